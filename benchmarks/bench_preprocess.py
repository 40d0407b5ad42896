"""Preprocessing throughput per core beside decode-only throughput on the same clips (issues 3, 16).

decode-only = ``read_clip`` (video frames at 25 fps + 16 kHz audio); preprocessing =
``preprocess_clip`` (decode + face track + mouth ROIs + identity + log-mel + stats). "Per core" is
clips per CPU-second of this process (all its threads), so the figure does not depend on how many
cores the machine lends us. Goal: preprocessing ≥ 0.5× decode-only per core. Two variants run side
by side, pass by pass: params.yaml's face settings ("fast") and the same with dlib itself running
the 68-point predictor and the face descriptor ("reference": the path before issue 16, and the
accuracy reference). A stage breakdown shows where the time goes, and the accuracy figures of
benchmarks/preprocess_accuracy.py (mouth landmark error of the fast track against the reference
one, in 96×96 ROI pixels; against the true landmarks where they are known; the identity
descriptors of both) guard the speed.

    .venv/bin/python benchmarks/bench_preprocess.py [--clips 6] [--frames 75] [--size 160]
        [--repeat 2] [--manifest M.parquet] [--synth-speakers 3] [--synth-clips 2]
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
import numpy as np  # noqa: E402
import torch  # noqa: E402
from preprocess_accuracy import compare_identity, compare_tracks, synthtalk_truth_clips  # noqa: E402
from sample_media import PHOTOS, photo, true_landmarks, write_talking_clip  # noqa: E402

from imagintalk.config import Params, load_params  # noqa: E402
from imagintalk.corpora.manifest import ManifestRow, read_manifest  # noqa: E402
from imagintalk.features.audio import log_mel  # noqa: E402
from imagintalk.media import read_clip  # noqa: E402
from imagintalk.preprocess import preprocess_clip  # noqa: E402
from imagintalk.preprocess.face_track import to_gray, track_faces  # noqa: E402
from imagintalk.preprocess.identity import identity_embedding  # noqa: E402
from imagintalk.preprocess.roi import make_mouth_rois  # noqa: E402

# The reference: dlib itself runs the predictor (frame by frame) and the descriptor (preprocessing
# before issue 16).
REFERENCE = {"predictor_backend": "dlib", "descriptor_backend": "dlib", "landmark_batch": 1}
TEXTS = ("set blue at a one now", "place green by d two soon", "lay red with f three again",
         "bin white in g four please", "set red at b five now", "place blue with h six again")


def sample_rows(root: Path, n: int, frames: int, size: int) -> tuple[list[ManifestRow], list[np.ndarray]]:
    """Talking clips of the packaged photos, and the true landmarks of each (tests/sample_media.py)."""
    rows, truths = [], []
    for i in range(n):
        path = root / f"clip{i}.mp4"
        name = PHOTOS[i % len(PHOTOS)]
        made = write_talking_clip(path, name, TEXTS[i % len(TEXTS)], n_frames=frames, seed=i, size=size)
        truths.append(true_landmarks(photo(name, size), made.openings, seed=i))
        rows.append(ManifestRow(f"bench/s{i}/c{i}", "bench", f"s{i}", "train", str(path), None, TEXTS[i % len(TEXTS)],
                                None, None, frames / 25, 25.0, 16000, f"{i:064d}"))
    return rows, truths


def with_face(params: Params, **face) -> Params:
    return params.model_copy(update={"face": params.face.model_copy(update=face)})


def interleaved(fns: dict[str, object], items, repeat: int) -> dict[str, float]:
    """CPU seconds of each fn over all items, ``repeat`` passes, the fns taking turns pass by pass
    (so a change of load on a shared machine hits every variant alike)."""
    spent = dict.fromkeys(fns, 0.0)
    for _ in range(repeat):
        for name, fn in fns.items():
            c = time.process_time()
            for it in items:
                fn(it)
            spent[name] += time.process_time() - c
    return spent


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


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=75, help="frames per generated clip (75 = 3 s)")
    ap.add_argument("--size", type=int, default=160, help="frame side of generated clips (SynthTalk: 160)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--manifest", type=Path, help="benchmark the first --clips rows of this manifest instead")
    ap.add_argument("--synth-speakers", type=int, default=3, help="SynthTalk speakers for the accuracy check (0: none)")
    ap.add_argument("--synth-clips", type=int, default=2, help="clips per SynthTalk speaker")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    params = load_params()
    variants = {"reference": with_face(params, **REFERENCE), "fast": params}
    if params.face.landmark_batch > 1:  # the same, landmarked frame by frame: what the runs save
        variants["frame-by-frame"] = with_face(params, landmark_batch=1)
    load_start = load()

    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        rows, truths = ((read_manifest(args.manifest)[: args.clips], None) if args.manifest
                        else sample_rows(Path(tmp), args.clips, args.frames, args.size))
        for p in variants.values():
            preprocess_clip(rows[0], p)  # load dlib models, warm caches
        video_s = args.repeat * sum(len(read_clip(r.video_path, r.audio_path).frames) / 25 for r in rows)
        n = args.repeat * len(rows)
        fns = {"decode-only": lambda r: read_clip(r.video_path, r.audio_path)}
        fns.update({name: (lambda r, p=p: preprocess_clip(r, p)) for name, p in variants.items()})
        cpu = interleaved(fns, rows, args.repeat)
        parts = {name: breakdown(rows, p) for name, p in variants.items()}
        frames = [read_clip(r.video_path, r.audio_path).frames for r in rows]
    load_end = load()
    ref, fast = variants["reference"].face, params.face
    bench_acc = compare_tracks(frames, fast, ref, truths) + [compare_identity(frames, fast, ref)]
    truth = (synthtalk_truth_clips(args.synth_speakers, args.synth_clips, params) if args.synth_speakers else [])
    synth_acc = compare_tracks([c.frames for c in truth], fast, ref, [c.landmarks for c in truth]) if truth else []

    f = params.face
    print(f"clips: {len(rows)} x {args.repeat} passes, {video_s / n:.2f} s each, "
          f"{'from ' + str(args.manifest) if args.manifest else f'{args.size}x{args.size} px'}; load average "
          f"(1/5/15 min) {load_start} at start, {load_end} after the timing")
    print(f"fast = params.yaml face: predictor_backend={f.predictor_backend} descriptor_backend="
          f"{f.descriptor_backend} detect_every={f.detect_every} landmark_batch={f.landmark_batch} "
          f"descriptor_frames={f.descriptor_frames}; reference = the same with {REFERENCE}, frame by frame")
    for name, c in cpu.items():
        ratio = "" if name == "decode-only" else f"  ratio to decode-only {cpu['decode-only'] / c:.2f}x"
        name = f"{name} ({1000 * c / n:.1f} ms/clip)"
        print(f"{name:26s}: {n / c:7.2f} clips/CPU-s  {video_s / c:7.1f} video-s/CPU-s{ratio}")
    for name, part in parts.items():
        print(f"stage CPU ms/clip, {name:9s}: " + "  ".join(f"{k} {v:.1f}" for k, v in part.items()))
    print("mouth points 48-67, error in px of the 96x96 ROI:")
    for line in bench_acc:
        print(f"  bench clips     : {line}")
    for line in synth_acc:
        print(f"  SynthTalk ({len(truth)} clips): {line}")
    print(f"ratio preprocessing/decode-only per core: {cpu['decode-only'] / cpu['fast']:.2f}x (goal >= 0.5x; "
          f"reference {cpu['decode-only'] / cpu['reference']:.2f}x)")


if __name__ == "__main__":
    main()
