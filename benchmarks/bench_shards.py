"""Shard stage on Ray Data with 1 and 2 workers: clips/s and the speed-up (issue 3 part 10; goal >= 1.8x).

Real talking-face clips (packaged photos + espeak-ng speech, as the tests use) are written once,
the unit tokenizer and codec are fitted once, and one local Ray session (num_cpus=2) runs
``shard_manifest`` with ``--workers 1`` and ``--workers 2`` into fresh roots. Each figure is the
whole stage (actor start-up, preprocessing, tokenizing, encoding, tar writing, index); a warm-up run
first loads the libraries into the page cache so neither measured run pays for a cold disk.

    python benchmarks/bench_shards.py [--clips 16] [--frames 75]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test fixtures: sample_media

from sample_media import PHOTOS, write_talking_clip  # noqa: E402

from imagintalk.config import Params, load_params  # noqa: E402
from imagintalk.corpora.manifest import ManifestRow, write_manifest  # noqa: E402
from imagintalk.ray_session import start_ray  # noqa: E402
from pipelines.shard import shard_manifest  # noqa: E402
from pipelines.tokenizers import fit_codec, fit_unit_tokenizer  # noqa: E402

TEXTS = ["bin blue at f two now", "lay green by d one soon", "place red in a nine again",
         "set white with z four please"]


def make_manifest(root: Path, clips: int, frames: int, name: str = "manifest.parquet") -> Path:
    rows = []
    for i in range(clips):
        speaker = f"spk{i % 4}"
        clip = write_talking_clip(root / "raw" / speaker / f"c{i:03d}.mp4", PHOTOS[i % len(PHOTOS)],
                                  TEXTS[i % len(TEXTS)], n_frames=frames, seed=i)
        rows.append(ManifestRow(
            clip_id=f"synthtalk/{speaker}/c{i:03d}", corpus="synthtalk", speaker=speaker, split="train",
            video_path=str(clip.path), audio_path=None, transcript=TEXTS[i % len(TEXTS)], emotion="neutral",
            intensity=None, duration_s=frames / 25, fps=25.0, sample_rate=16000,
            sha256=hashlib.sha256(clip.path.read_bytes()).hexdigest()))
    return write_manifest(rows, root / name)


def bench_params(clips: int) -> Params:
    """Codebooks small enough for a few thousand training frames; one shard per 8 clips."""
    p = load_params()
    return p.model_copy(update={
        "tokenizer": p.tokenizer.model_copy(update={"k": 32}),
        "codec": p.codec.model_copy(update={"codebook_size": 32}),
        "shards": p.shards.model_copy(update={"samples_per_shard": max(1, clips // 4)}),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--frames", type=int, default=75)
    args = ap.parse_args()

    import ray

    params = bench_params(args.clips)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        root = Path(tmp)
        manifest = make_manifest(root, args.clips, args.frames)
        warm = make_manifest(root / "warm", 2, args.frames)
        tok = root / "tok"
        fit_unit_tokenizer(manifest, tok, params)
        fit_codec(manifest, tok, params)

        start_ray(num_cpus=2)
        try:
            shard_manifest(warm, str(root / "warm_out"), workers=2, params=params, tokenizer_dir=str(tok))
            rates, steady, hashes = {}, {}, {}
            for workers in (1, 2):
                t0 = time.perf_counter()
                s = shard_manifest(manifest, str(root / f"out{workers}"), workers=workers, params=params,
                                   tokenizer_dir=str(tok))
                seconds = time.perf_counter() - t0
                assert s.used_ray and s.processed == args.clips, s
                rates[workers], hashes[workers] = s.processed / seconds, s.content_hash
                steady[workers] = (s.processed - 1) / max(s.process_s - s.first_clip_s, 1e-9)
                print(f"ray workers={workers}: {s.processed} clips in {seconds:6.1f} s = "
                      f"{rates[workers]:5.2f} clips/s end to end; after the first clip "
                      f"({s.first_clip_s:4.1f} s of start-up) {steady[workers]:5.2f} clips/s "
                      f"({s.clips_ok} ok, {s.quarantined} quarantined)")
        finally:
            ray.shutdown()
    assert hashes[1] == hashes[2], "worker count changed the data"
    print(f"{args.clips} clips x {args.frames} frames, {os.cpu_count()} CPUs visible; same content hash "
          f"{hashes[1][:12]} for both")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (other processes share the CPUs)")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x end to end, "
          f"{steady[2] / steady[1]:.2f}x after start-up (goal >= 1.8x)")


if __name__ == "__main__":
    main()
