"""Shard planning and writing: ``{root}/{corpus}/{split}/{split}-{NNNNNN}.tar`` plus a stats sidecar.

Shards are planned from the *manifest* (clips sorted by id, ``samples_per_shard`` per shard), not
from what survived preprocessing, so a shard's inputs are known before any clip is processed: a
rerun can check a shard's sidecar and skip its clips entirely (incremental mode, as
video2dataset). A quarantined clip is simply absent from its shard and listed in the sidecar.

Bytes are deterministic: members sorted by key then field, fixed mtime/uid/gid/owner names, PAX
headers only where a name needs one. A shard is staged under a temporary name and published in
one rename/put, its sidecar after it; a shard counts as complete only when both exist and the
sidecar's ``inputs_hash`` matches, so an interrupted write is redone rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import webdataset as wds

from imagintalk import storage
from imagintalk.config import ShardConfig, StorageConfig
from imagintalk.conventions import INDEX_NAME, QUARANTINE_NAME, SPLITS
from imagintalk.corpora.manifest import ManifestRow, name_problem
from imagintalk.errors import DataError
from imagintalk.shards.record import clip_id_to_key, dump_json

SHARD_DIGITS = 6
TAR_OWNER = "imagintalk"


@dataclass(frozen=True)
class ShardSpec:
    """One planned shard: where it goes and which manifest clips it holds."""

    corpus: str
    split: str
    number: int
    clip_ids: tuple[str, ...]
    inputs_hash: str          # clips' source hashes + params hash + tokenizer/codec versions

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:0{SHARD_DIGITS}d}"

    @property
    def tar_path(self) -> str:
        """Relative to the shard root, with ``/`` (also used in the index)."""
        return f"{self.corpus}/{self.split}/{self.name}.tar"

    @property
    def stats_path(self) -> str:
        return f"{self.corpus}/{self.split}/{self.name}.stats.json"


def sha256_json(value: Any) -> str:
    return hashlib.sha256(dump_json(value)).hexdigest()


def plan_shards(rows: Sequence[ManifestRow], samples_per_shard: int,
                fingerprint: dict[str, Any]) -> list[ShardSpec]:
    """Group rows by (corpus, split), sort by clip id and cut into shards of equal size.

    ``fingerprint`` (versions, params hash) enters each shard's ``inputs_hash`` so a change of
    tokenizer or params invalidates every shard, while a new clip only invalidates its own shard
    and those after it in the same split.
    """
    if samples_per_shard < 1:
        raise ValueError("samples_per_shard must be >= 1")
    specs: list[ShardSpec] = []
    ordered = sorted(rows, key=lambda r: (r.corpus, r.split, r.clip_id))
    for (corpus, split), group in groupby(ordered, key=lambda r: (r.corpus, r.split)):
        members = list(group)
        problem = name_problem("corpus", corpus) or (
            None if split in SPLITS else f"split {split!r} is not one of {list(SPLITS)}")
        if problem:   # both become directories under the shard root
            raise DataError(members[0].clip_id, problem)
        for number, start in enumerate(range(0, len(members), samples_per_shard)):
            chunk = members[start:start + samples_per_shard]
            inputs = [[r.clip_id, r.sha256] for r in chunk]
            specs.append(ShardSpec(
                corpus=corpus, split=split, number=number,
                clip_ids=tuple(r.clip_id for r in chunk),
                inputs_hash=sha256_json({"inputs": inputs, **fingerprint}),
            ))
    return specs


def read_sidecar(root: str, spec: ShardSpec, cfg: StorageConfig | None = None) -> dict | None:
    """The sidecar of a complete shard matching ``spec``, else ``None`` (redo it)."""
    stats_url = storage.contained(root, spec.stats_path)
    if not storage.exists(stats_url, cfg) or not storage.exists(storage.contained(root, spec.tar_path), cfg):
        return None
    try:
        sidecar = json.loads(storage.read_text(stats_url, cfg))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return sidecar if sidecar.get("inputs_hash") == spec.inputs_hash else None


def write_shard(
    root: str, spec: ShardSpec, samples: Sequence[dict[str, Any]],
    sample_stats: Sequence[dict[str, Any]], quarantined: Sequence[dict[str, Any]],
    versions: dict[str, Any], cfg: ShardConfig, storage_cfg: StorageConfig | None = None,
) -> dict:
    """Write one shard and its sidecar atomically; returns the sidecar.

    ``samples`` are encoded WebDataset samples (``__key__`` + field bytes) of the clips of
    ``spec`` that survived; ``sample_stats`` one stats dict per sample (any order);
    ``quarantined`` the rows refused.
    """
    allowed = {clip_id_to_key(c) for c in spec.clip_ids}
    ordered = sorted(samples, key=lambda s: s["__key__"])
    for s in ordered:
        if s["__key__"] not in allowed:
            raise ValueError(f"{spec.tar_path}: sample {s['__key__']!r} is not planned for this shard")
    tar_url = storage.contained(root, spec.tar_path)
    stats_url = storage.contained(root, spec.stats_path)
    with storage.staged_file(tar_url, storage_cfg) as tmp:
        with open(tmp, "wb") as f, wds.TarWriter(
            f, user=TAR_OWNER, group=TAR_OWNER, mtime=cfg.tar_mtime, encoder=False,
            format="PAX_FORMAT",
        ) as writer:
            for s in ordered:
                writer.write(s)
        digest, size = storage.sha256_file(tmp), tmp.stat().st_size
    sidecar = {
        "shard": spec.tar_path, "corpus": spec.corpus, "split": spec.split,
        "n_samples": len(ordered), "sha256": digest, "size": size, "inputs_hash": spec.inputs_hash,
        "input_keys": list(spec.clip_ids),
        "samples": sorted(sample_stats, key=lambda s: s["key"]),
        "quarantined": sorted(quarantined, key=lambda q: q["clip_id"]),
        **versions,
    }
    storage.write_text(stats_url, json.dumps(sidecar, sort_keys=True, indent=1), storage_cfg)
    return sidecar


def stale_shards(root: str, specs: Sequence[ShardSpec], storage_cfg: StorageConfig | None = None) -> list[str]:
    """Shard files (relative paths) of a planned (corpus, split) that the plan no longer names."""
    keep = {p for s in specs for p in (s.tar_path, s.stats_path)}
    stale: list[str] = []
    for corpus, split in sorted({(s.corpus, s.split) for s in specs}):
        folder = storage.contained(root, f"{corpus}/{split}")
        for url in storage.glob(storage.join(folder, f"{split}-*"), storage_cfg):
            rel = f"{corpus}/{split}/{url.rstrip('/').rsplit('/', 1)[-1]}"
            if rel not in keep and (rel.endswith(".tar") or rel.endswith(".stats.json")):
                stale.append(rel)
    return stale


def remove_stale_shards(root: str, specs: Sequence[ShardSpec],
                        storage_cfg: StorageConfig | None = None) -> list[str]:
    """Delete shard files of a planned (corpus, split) that the plan no longer names.

    A rerun with fewer clips or a larger ``samples_per_shard`` would otherwise leave old shards
    that a glob-based reader would still pick up. Each delete is proven to lie under ``root``.
    """
    removed = stale_shards(root, specs, storage_cfg)
    for rel in removed:
        storage.remove(storage.contained(root, rel), storage_cfg)
    return removed


def remove_leftover_temps(root: str, specs: Sequence[ShardSpec]) -> list[str]:
    """Delete the staging files of shards, sidecars and the index that a killed run left under a
    local root (only names this writer stages, only in the planned folders)."""
    found = [p for corpus, split in sorted({(s.corpus, s.split) for s in specs})
             for p in storage.staged_leftovers(storage.contained(root, f"{corpus}/{split}"), f"{split}-*")]
    found += [p for name in (INDEX_NAME, QUARANTINE_NAME) for p in storage.staged_leftovers(root, name)]
    for p in found:
        p.unlink(missing_ok=True)
    return [str(p) for p in found]


def read_tar_keys(path: str) -> list[str]:
    """Member names of a local shard in order (tests and audits check the layout)."""
    with tarfile.open(path) as tf:
        return tf.getnames()
