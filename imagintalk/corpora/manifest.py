"""The one manifest every corpus recipe produces, and the quarantine table beside it.

A manifest row is one clip; paths are absolute so a manifest can be read from any directory.
The quarantine table keeps every input that was refused with the reason, so nothing is lost
silently: ``<manifest>.quarantine.parquet`` next to the manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from imagintalk.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    clip_id: str              # "{corpus}/{speaker}/{clip}", unique within a manifest
    corpus: str
    speaker: str
    split: str                # train | val | test (speaker-disjoint)
    video_path: str
    audio_path: str | None    # None when the audio is the video's own track
    transcript: str | None
    emotion: str | None       # in imagintalk.emotions.EMOTIONS, or None where the corpus has no label
    intensity: float | None   # 0..1 where the corpus gives a level, else None
    duration_s: float
    fps: float
    sample_rate: int
    sha256: str               # of the video file (and audio file when separate)


@dataclass(frozen=True)
class QuarantineRow:
    path: str
    corpus: str
    stage: str                # ingest | shard | ...
    kind: str                 # media | layout | face | audio | ...
    reason: str


MANIFEST_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("corpus", pa.string()), ("speaker", pa.string()), ("split", pa.string()),
    ("video_path", pa.string()), ("audio_path", pa.string()), ("transcript", pa.string()),
    ("emotion", pa.string()), ("intensity", pa.float64()), ("duration_s", pa.float64()),
    ("fps", pa.float64()), ("sample_rate", pa.int64()), ("sha256", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([(f.name, pa.string()) for f in fields(QuarantineRow)])


def quarantine_path(manifest_path: str | Path) -> Path:
    p = Path(manifest_path)
    return p.with_name(p.name.removesuffix(".parquet") + ".quarantine.parquet")


def write_manifest(rows: list[ManifestRow], path: str | Path,
                   quarantine: list[QuarantineRow] | None = None) -> Path:
    """Rows sorted by clip_id (deterministic bytes); written to a temp name then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r.clip_id)
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=MANIFEST_SCHEMA)
    _atomic_parquet(table, path)
    q = sorted(quarantine or [], key=lambda r: (r.path, r.stage))
    _atomic_parquet(pa.Table.from_pylist([asdict(r) for r in q], schema=QUARANTINE_SCHEMA),
                    quarantine_path(path))
    return path


def read_manifest(path: str | Path) -> list[ManifestRow]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(path, "manifest does not exist")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ConfigError(path, f"not a readable parquet manifest ({exc.__class__.__name__})") from exc
    missing = set(MANIFEST_SCHEMA.names) - set(table.column_names)
    if missing:
        raise ConfigError(path, f"manifest lacks columns {sorted(missing)}")
    return [ManifestRow(**{k: r[k] for k in MANIFEST_SCHEMA.names}) for r in table.to_pylist()]


def read_manifest_frame(path: str | Path) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in read_manifest(path)], columns=MANIFEST_SCHEMA.names)


def read_quarantine(manifest_path: str | Path) -> list[QuarantineRow]:
    q = quarantine_path(manifest_path)
    if not q.exists():
        return []
    return [QuarantineRow(**r) for r in pq.read_table(q).to_pylist()]


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
