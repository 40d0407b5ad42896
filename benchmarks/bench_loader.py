"""Loader throughput beside a raw tar read of the same shards (issue 3 part 10; goal >= 0.8x).

Shards of random records at the documented shapes (3 s clips: 75 frames, 8 codec levels) are
written once to a temp dir; then, after one warm-up pass so both read from the page cache:
  raw:    tarfile iteration reading every member's bytes (the I/O floor: no decoding at all);
  webdataset: WebDataset's tar iteration and grouping into samples, no decoding;
  loader: imagintalk.data.make_loader, train mode (shuffle buffer, random crops, padded batches),
          with the LoaderConfig of params.yaml (every field: what evaluation reads);
  per stage: the same loader with the fields that stage's model reads (imagintalk/train/graph.py),
          what its training actually pays.
Prints samples/s of each and the ratios to the raw read.

    python benchmarks/bench_loader.py [--clips 256] [--frames 75] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds

from imagintalk import PIPELINE_VERSION
from imagintalk.config import LoaderConfig, ShardConfig, load_params
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.data import make_loader
from imagintalk.shards import ShardRecord, build_index, encode_record, plan_shards, write_shard
from imagintalk.shards.index import write_index
from imagintalk.train.graph import STAGES

VERSIONS = {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": "bench", "codec_version": "bench"}


def random_record(clip_id: str, t: int, levels: int, rng: np.random.Generator, units: int = 200) -> ShardRecord:
    yy, xx = np.mgrid[0:150, 0:150] / 150.0
    face = np.stack([127 + 100 * np.sin(2 * np.pi * (xx + yy) + p) for p in rng.random(3) * 6], -1)
    return ShardRecord(
        clip_id=clip_id, lips=rng.integers(0, 256, (t, 96, 96), dtype=np.uint8), face=face.astype(np.uint8),
        identity=rng.standard_normal(128).astype(np.float32),
        emotion={"label": "neutral", "intensity": None, "probs": None},
        mel=rng.standard_normal((80, 4 * t)).astype(np.float16),
        units=rng.integers(0, units, 2 * t).astype(np.int16),
        codes=rng.integers(0, 256, (levels, 2 * t)).astype(np.int16),
        audio=(0.1 * rng.standard_normal(640 * t)).astype(np.float32),
        mouth=rng.random(t).astype(np.float32), speaker=rng.standard_normal(256).astype(np.float32),
        landmarks=rng.random((t, 136)).astype(np.float16),
        meta={"split": "train"},
    )


def build_shards(root: Path, clips: int, frames: int, per_shard: int, units: int = 200) -> list[str]:
    rng = np.random.default_rng(0)
    recs = [random_record(f"bench/s{i % 8}/{i:05d}", frames, 8, rng, units) for i in range(clips)]
    rows = [ManifestRow(r.clip_id, "bench", r.clip_id.split("/")[1], "train", "x", None, None, None, None,
                        frames / 25, 25.0, 16000, "0" * 64) for r in recs]
    by_id = {r.clip_id: r for r in recs}
    sidecars = []
    for spec in plan_shards(rows, per_shard, {}):
        mine = [by_id[c] for c in spec.clip_ids]
        stats = [{"key": r.clip_id, "speaker": r.clip_id.split("/")[1], "duration_s": frames / 25} for r in mine]
        sidecars.append(write_shard(str(root), spec, [encode_record(r) for r in mine], stats, [], VERSIONS,
                                    ShardConfig()))
    write_index(str(root), build_index(sidecars, VERSIONS, "bench"), [])
    return [str(root / s["shard"]) for s in sidecars]


def raw_read(paths: list[str]) -> int:
    samples, last = 0, None
    for path in paths:
        with tarfile.open(path, "r|") as tf:
            for member in tf:
                data = tf.extractfile(member).read()
                assert len(data) == member.size
                key = member.name.split(".", 1)[0]
                samples += key != last
                last = key
    return samples


def webdataset_read(paths: list[str]) -> int:
    """WebDataset's own tar iteration and grouping, no decoding: where the loader's floor is."""
    return sum(1 for _ in wds.DataPipeline(wds.SimpleShardList(paths), wds.tarfile_to_samples()))


def loader_read(root: str, cfg: LoaderConfig) -> int:
    return sum(len(b["keys"]) for b in make_loader(root, "train", True, cfg))


def best_rate(fn, repeats: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return n / best, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--frames", type=int, default=75)
    ap.add_argument("--per-shard", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = load_params().loader
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        paths = build_shards(Path(tmp), args.clips, args.frames, args.per_shard)
        mb = sum(Path(p).stat().st_size for p in paths) / 1e6
        raw_read(paths)  # warm the page cache for both readers
        raw, n_raw = best_rate(lambda: raw_read(paths), args.repeats)
        plain, n_plain = best_rate(lambda: webdataset_read(paths), args.repeats)
        loader, n_loader = best_rate(lambda: loader_read(tmp, cfg), args.repeats)
        stages = {name: best_rate(lambda s=spec: loader_read(tmp, s.loader_config(load_params(), train=True)),
                                  args.repeats)[0] for name, spec in STAGES.items()}
    assert n_raw == n_plain == n_loader == args.clips, (n_raw, n_plain, n_loader)
    print(f"shards: {len(paths)} x {args.per_shard} clips of {args.frames} frames, {mb:.0f} MB "
          f"(batch {cfg.batch_size}, shuffle buffer {cfg.shuffle_buffer}, workers {cfg.num_workers})")
    print(f"raw tar read: {raw:8.1f} samples/s")
    print(f"webdataset read, no decoding: {plain:8.1f} samples/s")
    print(f"loader:       {loader:8.1f} samples/s (decode, crop, shuffle, pad to uint8 batches)")
    print(f"ratio loader/raw: {loader / raw:.2f}x (goal >= 0.8x)")
    for name, rate in stages.items():
        fields = ", ".join(STAGES[name].fields or ("all",)) + (" + audio" if STAGES[name].audio else "")
        print(f"  {name:15s} {rate:8.1f} samples/s  {rate / raw:.2f}x raw  ({fields})")


if __name__ == "__main__":
    main()
