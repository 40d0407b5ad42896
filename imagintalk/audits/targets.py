"""Read an audit target into plain tables: a manifest parquet, or a shard root (local or fsspec URL).

The audits judge tables, never media: a manifest is its parquet plus the quarantine table beside
it; a shard root is its dataset index (``index.json``), its quarantine list (``quarantine.json``),
the per-shard stats sidecars (``{corpus}/{split}/{split}-NNNNNN.stats.json``) and, for the
short-shard check, the member list (and optionally the sha256) of each shard tar, streamed once.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
from tqdm import tqdm

from imagintalk import storage
from imagintalk.config import StorageConfig
from imagintalk.corpora.manifest import read_manifest_frame, read_quarantine
from imagintalk.errors import CorpusLayoutError, DataError
from imagintalk.shards.index import INDEX_NAME, QUARANTINE_NAME
from imagintalk.shards.record import key_to_clip_id

SIDECAR_SUFFIX = ".stats.json"
# Per-sample fields of a stats sidecar (the shard writer's contract); a sample lacking one of these
# fails shards.fields_complete rather than silently passing the range checks (GX skips nulls).
SAMPLE_FIELDS = ("key", "split", "speaker", "emotion", "duration_s", "n_frames", "face_ratio",
                 "lip_sharpness", "lip_brightness", "audio_rms", "clipping_ratio", "silence_ratio",
                 "av_mismatch_s", "units_per_s", "codes_shape", "mel_frames", "speaker_norm")
QUARANTINE_COLUMNS = ("id", "kind", "reason")
_CHUNK = 1 << 20


@dataclass
class ManifestTables:
    """A manifest (one row per clip) and its quarantine table (id = the refused path)."""

    clips: pd.DataFrame
    quarantine: pd.DataFrame


@dataclass
class ShardTables:
    """A shard root as tables.

    samples: one row per sidecar sample (+ ``clip_id``, ``corpus``, ``shard``).
    shards: one row per sidecar (declared/listed/tar sample counts, hashes, keys missing from the tar).
    splits: one row per split (index count vs sum of sidecar counts).
    quarantine: rows of quarantine.json (id = clip id).
    """

    samples: pd.DataFrame
    shards: pd.DataFrame
    splits: pd.DataFrame
    quarantine: pd.DataFrame
    index: dict[str, Any]


def is_manifest_target(target: str) -> bool:
    return target.endswith(".parquet")


def load_manifest_tables(path: str | Path) -> ManifestTables:
    """The manifest and its quarantine table; DataError for a missing or unreadable manifest."""
    clips = read_manifest_frame(path)
    quarantine = quarantine_frame([(q.path, q.kind, q.reason) for q in read_quarantine(path)])
    return ManifestTables(clips=clips, quarantine=quarantine)


def quarantine_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))


def load_shard_tables(root: str, cfg: StorageConfig | None = None, verify_sha256: bool = True,
                      max_listed: int = 10) -> ShardTables:
    """Read the index, the quarantine list, every sidecar and every tar's member list under ``root``.

    ``max_listed`` caps the keys named per short shard (a lost tail can be thousands of clips).

    Raises CorpusLayoutError when ``root`` has no index.json (not a shard root) or a JSON file
    cannot be parsed: those are not data-quality findings but an unusable target.
    """
    root = str(root).rstrip("/") or "/"
    index_url = storage.join(root, INDEX_NAME)
    if not storage.exists(index_url, cfg):
        raise CorpusLayoutError(root, "neither a manifest (.parquet) nor a shard root (no index.json)")
    index = _read_json(index_url, cfg)
    if not isinstance(index, dict):
        raise CorpusLayoutError(index_url, "dataset index must be a JSON object")
    quarantine = _read_quarantine_json(storage.join(root, QUARANTINE_NAME), cfg)
    indexed_hashes = index_shard_hashes(index)

    sample_rows: list[dict[str, Any]] = []
    shard_rows: list[dict[str, Any]] = []
    sidecars = storage.glob(storage.join(root, "*", "*", f"*{SIDECAR_SUFFIX}"), cfg)
    for sidecar_url in tqdm(sidecars, desc="audit: read shards", unit="shard"):
        sidecar = _read_json(sidecar_url, cfg)
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get("samples"), list):
            raise CorpusLayoutError(sidecar_url, "stats sidecar must be an object with a 'samples' list")
        tar_url = sidecar_url[: -len(SIDECAR_SUFFIX)] + ".tar"
        shard = _relative(tar_url)
        split = posixpath.basename(posixpath.dirname(shard))
        keys = [_clip_id(str(s.get("key", ""))) for s in sidecar["samples"]]
        tar_keys, tar_sha = _scan_tar(tar_url, cfg, verify_sha256)
        missing = [k for k in keys if k not in tar_keys]
        shard_rows.append({
            "shard": shard, "split": split,
            "n_samples": _as_int(sidecar.get("n_samples")), "listed_samples": len(keys),
            "tar_samples": len(tar_keys), "sidecar_sha256": sidecar.get("sha256"), "tar_sha256": tar_sha,
            "index_sha256": indexed_hashes.get(shard),
            "missing_keys": _listing(missing, max_listed),
        })
        for sample, clip_id in zip(sidecar["samples"], keys, strict=True):
            row = {f: sample.get(f) for f in SAMPLE_FIELDS}
            row.update(clip_id=clip_id, corpus=clip_id.split("/", 1)[0], shard=shard)
            sample_rows.append(row)

    samples = pd.DataFrame(sample_rows, columns=[*SAMPLE_FIELDS, "clip_id", "corpus", "shard"])
    shards = pd.DataFrame(shard_rows, columns=["shard", "split", "n_samples", "listed_samples",
                                               "tar_samples", "sidecar_sha256", "tar_sha256",
                                               "index_sha256", "missing_keys"])
    return ShardTables(samples=samples, shards=shards, splits=_split_counts(index, shards, index_url),
                       quarantine=quarantine, index=index)


def index_split_counts(index: dict[str, Any], where: str) -> dict[str, int]:
    """Samples per split recorded in the dataset index.

    The shard writer records ``splits: {split: {"n_samples": n, ...}}``; a flat
    ``counts: {split: n}`` is read too. The index being the data version MLflow records, an index
    without per-split counts is a layout error, not a finding.
    """
    raw = index.get("splits", index.get("counts"))
    if not isinstance(raw, dict):
        raise CorpusLayoutError(where, "dataset index has no per-split sample counts ('splits')")
    out: dict[str, int] = {}
    for split, value in raw.items():
        n = _as_int(value.get("n_samples") if isinstance(value, dict) else value)
        if n is None:
            raise CorpusLayoutError(where, f"splits[{split!r}] has no sample count (n_samples)")
        out[str(split)] = n
    return out


def index_shard_hashes(index: dict[str, Any]) -> dict[str, str]:
    """``shards: [{path, sha256}]`` of the index, by shard path (empty when the index lists none)."""
    shards = index.get("shards")
    if not isinstance(shards, list):
        return {}
    return {str(s.get("path")): str(s.get("sha256")) for s in shards if isinstance(s, dict)}


def _split_counts(index: dict[str, Any], shards: pd.DataFrame, where: str) -> pd.DataFrame:
    indexed = index_split_counts(index, where)
    declared = shards.groupby("split")["n_samples"].sum().to_dict() if len(shards) else {}
    splits = sorted(set(indexed) | set(declared))
    return pd.DataFrame({"split": splits,
                         "index_count": [int(indexed.get(s, 0)) for s in splits],
                         "sidecar_count": [int(declared.get(s, 0) or 0) for s in splits]})


def _read_quarantine_json(url: str, cfg: StorageConfig | None) -> pd.DataFrame:
    """quarantine.json rows {clip_id, kind, reason}; absent means nothing was quarantined."""
    if not storage.exists(url, cfg):
        return quarantine_frame([])
    rows = _read_json(url, cfg)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CorpusLayoutError(url, "quarantine list must be a JSON list of objects")
    return quarantine_frame([(str(r.get("clip_id", r.get("path", ""))), str(r.get("kind", "")),
                              str(r.get("reason", ""))) for r in rows])


def _scan_tar(url: str, cfg: StorageConfig | None, verify_sha256: bool) -> tuple[set[str], str | None]:
    """Keys (clip ids) of the samples in a shard tar and, optionally, its sha256, in one stream.

    A missing or truncated tar yields the keys it could read: the shard then counts as short.
    """
    if not storage.exists(url, cfg):
        return set(), None
    keys: set[str] = set()
    with storage.open_file(url, "rb", cfg) as raw:
        stream = _HashingReader(raw) if verify_sha256 else raw
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        keys.add(_clip_id(_member_key(member.name)))
        except (tarfile.TarError, EOFError, OSError):
            pass  # truncated: keep what was read, the count check reports the shortfall
        if isinstance(stream, _HashingReader):
            stream.drain()
            return keys, stream.hexdigest()
    return keys, None


class _HashingReader:
    """A read-only stream that hashes what passes through (tar is read once, for keys and sha256)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        return data

    def drain(self) -> None:
        for chunk in iter(lambda: self.read(_CHUNK), b""):
            del chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _listing(items: list[str], limit: int) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _member_key(name: str) -> str:
    """WebDataset's key of a tar member: the path up to the first dot of its last component."""
    directory, base = posixpath.split(name)
    return posixpath.join(directory, base.split(".", 1)[0]) if directory else base.split(".", 1)[0]


def _clip_id(key: str) -> str:
    """Sidecar keys and tar keys alike back to the clip id (WebDataset keys escape dots)."""
    return key_to_clip_id(key)


def _relative(url: str) -> str:
    """``{corpus}/{split}/{split}-NNNNNN.tar``: the sidecar glob is exactly three levels deep."""
    return "/".join(url.replace("\\", "/").rsplit("/", 3)[-3:])


def _read_json(url: str, cfg: StorageConfig | None) -> Any:
    try:
        return json.loads(storage.read_text(url, cfg))
    except json.JSONDecodeError as exc:
        raise CorpusLayoutError(url, f"not valid JSON (line {exc.lineno})") from exc
    except FileNotFoundError as exc:
        raise DataError(url, "does not exist") from exc


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

