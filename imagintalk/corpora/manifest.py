"""The one manifest every corpus recipe produces, and the quarantine table beside it.

A manifest row is one clip; paths are absolute so a manifest can be read from any directory.
The quarantine table keeps every input that was refused with the reason, so nothing is lost
silently: ``<manifest>.quarantine.parquet`` next to the manifest.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from imagintalk.conventions import MEDIA_SUFFIXES, SPLITS, VIDEO_SUFFIXES
from imagintalk.errors import DataError

# A corpus name becomes a directory of the shard root: letters, digits, '_', '-', '.' (not first).
# Speaker and clip names become parts of clip ids and WebDataset keys: any single path segment
# (no '/', '\\', control character, no leading '.', so never '.' or '..'), 128 characters at most.
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
SAFE_NAME_RULE = "letters, digits, . _ - not starting with '.'"
SEGMENT = re.compile(r"[^/\\\x00-\x1f\x7f.][^/\\\x00-\x1f\x7f]{0,127}")
SEGMENT_RULE = "one path segment: no '/', '\\', control characters or leading '.'"


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


def name_problem(what: str, value: object, rule: re.Pattern[str] = SAFE_NAME) -> str | None:
    """Why ``value`` cannot be used as the ``what`` name (it becomes part of a path), or None."""
    if isinstance(value, str) and rule.fullmatch(value):
        return None
    return f"{what} {value!r} is not a safe name ({SAFE_NAME_RULE if rule is SAFE_NAME else SEGMENT_RULE})"


def id_problem(corpus: object, speaker: object, clip: object) -> str | None:
    """Why these identifiers cannot name a clip (they become file paths and keys), or None."""
    return (name_problem("corpus", corpus) or name_problem("speaker", speaker, SEGMENT)
            or name_problem("clip", clip, SEGMENT))


def row_problem(row: ManifestRow, check_split: bool = True) -> str | None:
    """The first reason a manifest row cannot be trusted, or None.

    Identifiers are path segments, ``clip_id`` is exactly ``{corpus}/{speaker}/{clip}``, the split
    is known (unless ``check_split``: the audit has its own split expectation), paths are absolute
    media files, numbers are finite and positive.
    """
    prefix = f"{row.corpus}/{row.speaker}/"
    clip = row.clip_id[len(prefix):] if isinstance(row.clip_id, str) and row.clip_id.startswith(prefix) else None
    if clip is None and not id_problem(row.corpus, row.speaker, "clip"):
        return f"clip_id {row.clip_id!r} is not '{{corpus}}/{{speaker}}/{{clip}}' of its row"
    problem = id_problem(row.corpus, row.speaker, clip)
    if problem:
        return problem
    if check_split and row.split not in SPLITS:
        return f"split {row.split!r} is not one of {list(SPLITS)}"
    for what, path, allowed in (("video_path", row.video_path, VIDEO_SUFFIXES),
                                ("audio_path", row.audio_path, MEDIA_SUFFIXES)):
        if path is None and what == "audio_path":
            continue
        if not isinstance(path, str) or not os.path.isabs(path):
            return f"{what} {path!r} is not an absolute path"
        if Path(path).suffix.lower() not in allowed:
            return f"{what} {path!r} is not a media file ({', '.join(sorted(allowed))})"
    for what, value in (("duration_s", row.duration_s), ("fps", row.fps), ("sample_rate", row.sample_rate)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            return f"{what} {value!r} is not a positive number"
    return None


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


def read_manifest(path: str | Path, strict: bool = True) -> list[ManifestRow]:
    """The rows of a manifest; DataError naming the manifest for an unreadable file, a missing
    or wrongly typed column and, when ``strict``, for any row ``row_problem`` refuses (every
    stage that turns rows into files reads strictly; the audit reads leniently to report them)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "manifest does not exist")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(path, f"not a readable parquet manifest ({exc.__class__.__name__})") from exc
    missing = set(MANIFEST_SCHEMA.names) - set(table.column_names)
    if missing:
        raise DataError(path, f"manifest lacks columns {sorted(missing)}")
    for want in MANIFEST_SCHEMA:
        have = table.schema.field(want.name).type
        if not (pa.types.is_null(have) or _same_kind(have, want.type)):
            raise DataError(path, f"column {want.name} is {have}, expected {want.type}")
    rows = [ManifestRow(**{k: r[k] for k in MANIFEST_SCHEMA.names}) for r in table.to_pylist()]
    if strict:
        bad = [(i, r, p) for i, r in enumerate(rows) if (p := row_problem(r))]
        if bad:
            i, r, reason = bad[0]
            more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
            raise DataError(path, f"row {i} ({r.clip_id!r}): {reason}{more}")
    return rows


def _same_kind(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_string(want):
        return pa.types.is_string(have) or pa.types.is_large_string(have)
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)
    return pa.types.is_integer(have) or pa.types.is_floating(have)


def read_manifest_frame(path: str | Path) -> pd.DataFrame:
    """All rows (leniently) plus ``row_problem`` ("" for a sound row), for the audits."""
    rows = read_manifest(path, strict=False)
    frame = pd.DataFrame([asdict(r) for r in rows], columns=MANIFEST_SCHEMA.names)
    frame["row_problem"] = [row_problem(r, check_split=False) or "" for r in rows]
    return frame


def read_quarantine(manifest_path: str | Path) -> list[QuarantineRow]:
    q = quarantine_path(manifest_path)
    if not q.exists():
        return []
    return [QuarantineRow(**r) for r in pq.read_table(q).to_pylist()]


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
