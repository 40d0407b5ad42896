"""Preprocessing throughput per core beside decode-only throughput on the same clips (issue 3 §10).

decode-only = ``read_clip`` (video frames at 25 fps + 16 kHz audio); preprocessing =
``preprocess_clip`` (decode + face track + mouth ROIs + identity + log-mel + stats). "Per core" is
clips per CPU-second of this process (all its threads), so the figure does not depend on how many
cores the machine lends us. Goal: preprocessing ≥ 0.5× decode-only per core. A stage breakdown
shows where the time goes.

    .venv/bin/python benchmarks/bench_preprocess.py [--clips 6] [--frames 75] [--size 160]
                                                    [--manifest M.parquet]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test fixtures: sample_media

import cv2  # noqa: E402
import torch  # noqa: E402
from sample_media import PHOTOS, write_talking_clip  # noqa: E402

from imagintalk.config import Params, load_params  # noqa: E402
from imagintalk.corpora.manifest import ManifestRow, read_manifest  # noqa: E402
from imagintalk.features.audio import log_mel  # noqa: E402
from imagintalk.media import read_clip  # noqa: E402
from imagintalk.preprocess import preprocess_clip  # noqa: E402
from imagintalk.preprocess.face_track import to_gray, track_faces  # noqa: E402
from imagintalk.preprocess.identity import identity_embedding  # noqa: E402
from imagintalk.preprocess.roi import make_mouth_rois  # noqa: E402

TEXTS = ("set blue at a one now", "place green by d two soon", "lay red with f three again",
         "bin white in g four please", "set red at b five now", "place blue with h six again")


def sample_rows(root: Path, n: int, frames: int, size: int) -> list[ManifestRow]:
    rows = []
    for i in range(n):
        path = root / f"clip{i}.mp4"
        write_talking_clip(path, PHOTOS[i % len(PHOTOS)], TEXTS[i % len(TEXTS)], n_frames=frames, seed=i,
                           size=size)
        rows.append(ManifestRow(f"bench/s{i}/c{i}", "bench", f"s{i}", "train", str(path), None, TEXTS[i % len(TEXTS)],
                                None, None, frames / 25, 25.0, 16000, f"{i:064d}"))
    return rows


def timed(fn, items, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for ``repeat`` passes of fn over items."""
    w, c = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for it in items:
            fn(it)
    return time.perf_counter() - w, time.process_time() - c


def breakdown(rows: list[ManifestRow], params: Params) -> dict[str, float]:
    """CPU ms per clip of each stage of preprocess_clip."""
    spent = {"decode": 0.0, "track": 0.0, "roi": 0.0, "identity": 0.0, "mel": 0.0}
    for row in rows:
        t = time.process_time()
        clip = read_clip(row.video_path, row.audio_path)
        spent["decode"] += time.process_time() - t
        t = time.process_time()
        gray = to_gray(clip.frames)
        track = track_faces(gray, params.face)
        spent["track"] += time.process_time() - t
        t = time.process_time()
        make_mouth_rois(gray, track, params.face)
        spent["roi"] += time.process_time() - t
        t = time.process_time()
        identity_embedding(clip.frames, track, params.face)
        spent["identity"] += time.process_time() - t
        t = time.process_time()
        log_mel(clip.audio, params.audio)
        spent["mel"] += time.process_time() - t
    return {k: 1000 * v / len(rows) for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=75, help="frames per generated clip (75 = 3 s)")
    ap.add_argument("--size", type=int, default=160, help="frame side of generated clips (SynthTalk: 160)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--manifest", type=Path, help="benchmark the first --clips rows of this manifest instead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    params = load_params()

    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        rows = (read_manifest(args.manifest)[: args.clips] if args.manifest
                else sample_rows(Path(tmp), args.clips, args.frames, args.size))
        preprocess_clip(rows[0], params)  # load dlib models, warm caches
        video_s = args.repeat * sum(len(read_clip(r.video_path, r.audio_path).frames) / 25 for r in rows)
        n = args.repeat * len(rows)
        dw, dc = timed(lambda r: read_clip(r.video_path, r.audio_path), rows, args.repeat)
        pw, pc = timed(lambda r: preprocess_clip(r, params), rows, args.repeat)
        parts = breakdown(rows, params)

    print(f"clips: {len(rows)} x {args.repeat} passes, {video_s / n:.2f} s each, "
          f"{'from ' + str(args.manifest) if args.manifest else f'{args.size}x{args.size} px'}, "
          f"descriptor_frames={params.face.descriptor_frames}, detect_every={params.face.detect_every}")
    print(f"decode-only   : {n / dw:7.2f} clips/s wall  {n / dc:7.2f} clips/CPU-s  "
          f"{video_s / dc:7.1f} video-s/CPU-s")
    print(f"preprocessing : {n / pw:7.2f} clips/s wall  {n / pc:7.2f} clips/CPU-s  "
          f"{video_s / pc:7.1f} video-s/CPU-s")
    print("stage CPU ms/clip: " + "  ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    ratio = dc / pc
    print(f"ratio preprocessing/decode-only per core: {ratio:.2f}x (goal >= 0.5x)")


if __name__ == "__main__":
    main()
