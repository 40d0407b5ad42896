"""The dataset index ``{root}/index.json`` (the data version) and ``{root}/quarantine.json``.

The index is built from the shard sidecars alone, so it is the same whether a shard was written
now or skipped as complete. It holds no timestamps: identical data gives identical index bytes,
which DVC tracks and MLflow records. ``content_hash`` = sha256 over the sorted ``path:sha256`` of
every shard plus the pipeline/tokenizer/codec versions: it changes exactly when a byte of training
data does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from imagintalk import storage
from imagintalk.config import StorageConfig
from imagintalk.conventions import INDEX_NAME, QUARANTINE_NAME
from imagintalk.errors import DataError
from imagintalk.shards.record import dump_json

VERSION_KEYS = ("pipeline_version", "tokenizer_version", "codec_version")


def content_hash(shards: Sequence[dict[str, Any]], versions: dict[str, Any]) -> str:
    pairs = sorted(f"{s['shard']}:{s['sha256']}" for s in shards)
    payload = {"shards": pairs, **{k: versions.get(k) for k in VERSION_KEYS}}
    return hashlib.sha256(dump_json(payload)).hexdigest()


def build_index(sidecars: Sequence[dict[str, Any]], versions: dict[str, Any],
                params_hash: str) -> dict[str, Any]:
    """Counts, hours and speakers per split, per-shard hashes, versions and the content hash."""
    splits: dict[str, dict[str, Any]] = {}
    for sc in sorted(sidecars, key=lambda s: s["shard"]):
        entry = splits.setdefault(sc["split"], {"n_samples": 0, "seconds": 0.0, "speakers": set(),
                                                "shards": [], "n_quarantined": 0})
        entry["n_samples"] += sc["n_samples"]
        entry["seconds"] += sum(float(s["duration_s"]) for s in sc["samples"])
        entry["speakers"].update(s["speaker"] for s in sc["samples"])
        entry["shards"].append(sc["shard"])
        entry["n_quarantined"] += len(sc["quarantined"])
    split_out = {
        name: {"n_samples": e["n_samples"], "hours": round(e["seconds"] / 3600.0, 6),
               "speakers": sorted(e["speakers"]), "n_speakers": len(e["speakers"]),
               "shards": e["shards"], "n_quarantined": e["n_quarantined"]}
        for name, e in sorted(splits.items())
    }
    shards = [{"path": sc["shard"], "corpus": sc["corpus"], "split": sc["split"],
               "n_samples": sc["n_samples"], "sha256": sc["sha256"],
               **({"size": sc["size"]} if "size" in sc else {})}
              for sc in sorted(sidecars, key=lambda s: s["shard"])]
    return {
        **{k: versions.get(k) for k in VERSION_KEYS},
        "params_hash": params_hash,
        "content_hash": content_hash(sidecars, versions),
        "n_samples": sum(s["n_samples"] for s in split_out.values()),
        "n_quarantined": sum(s["n_quarantined"] for s in split_out.values()),
        "hours": round(sum(s["hours"] for s in split_out.values()), 6),
        "corpora": sorted({sc["corpus"] for sc in sidecars}),
        "splits": split_out,
        "shards": shards,
    }


def quarantine_rows(sidecars: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [q for sc in sidecars for q in sc["quarantined"]]
    return sorted(rows, key=lambda q: q["clip_id"])


def write_index(root: str, index: dict[str, Any], quarantine: list[dict[str, Any]],
                cfg: StorageConfig | None = None) -> str:
    url = storage.join(root, INDEX_NAME)
    storage.write_text(storage.join(root, QUARANTINE_NAME),
                       json.dumps(quarantine, sort_keys=True, indent=1), cfg)
    storage.write_text(url, json.dumps(index, sort_keys=True, indent=1), cfg)
    return url


def invalidate_index(root: str, cfg: StorageConfig | None = None) -> None:
    """Remove the index (and its quarantine list) before a run changes any shard: a run killed
    midway then leaves no index at all, never an old one describing tars that changed."""
    for name in (INDEX_NAME, QUARANTINE_NAME):
        storage.remove(storage.join(root, name), cfg)


def read_index(root: str, cfg: StorageConfig | None = None, verify: bool = True) -> dict[str, Any]:
    """The index of ``root``; with ``verify``, every shard it lists must exist with the size it
    recorded (one listing of the root), else DataError: a stale index never names the data."""
    url = storage.join(root, INDEX_NAME)
    if not storage.exists(url, cfg):
        raise DataError(url, "no dataset index (run `imagintalk shard` first)")
    try:
        index = json.loads(storage.read_text(url, cfg))
    except json.JSONDecodeError as exc:
        raise DataError(url, f"index is not valid JSON ({exc.msg})") from exc
    if verify:
        verify_index(root, index, cfg)
    return index


def verify_index(root: str, index: dict[str, Any], cfg: StorageConfig | None = None) -> None:
    listed = [s for s in index.get("shards", []) if "size" in s]
    if not listed:
        return
    sizes = storage.file_sizes(root, ".tar", cfg)
    for s in listed:
        size = sizes.get(s["path"])
        if size != s["size"]:
            what = "is missing" if size is None else f"has {size} bytes, the index says {s['size']}"
            raise DataError(storage.join(root, INDEX_NAME),
                              f"stale index: shard {s['path']} {what} (rerun `imagintalk shard`)")


def read_quarantine(root: str, cfg: StorageConfig | None = None) -> list[dict[str, Any]]:
    url = storage.join(root, QUARANTINE_NAME)
    return json.loads(storage.read_text(url, cfg)) if storage.exists(url, cfg) else []


def shard_urls(root: str, split: str, cfg: StorageConfig | None = None,
               index: dict[str, Any] | None = None) -> list[str]:
    """Full URLs of the non-empty shards of ``split`` listed in the index (all corpora), sorted.

    A shard whose clips were all quarantined stays in the index (it records them) but is left out
    here: handed to a training worker it would give that worker nothing to do.
    """
    index = index if index is not None else read_index(root, cfg)
    if split not in index["splits"]:
        raise DataError(storage.join(root, INDEX_NAME),
                          f"no split {split!r} (have {sorted(index['splits'])})")
    empty = {s["path"] for s in index.get("shards", []) if s.get("n_samples") == 0}
    return [storage.join(root, *p.split("/")) for p in index["splits"][split]["shards"] if p not in empty]
