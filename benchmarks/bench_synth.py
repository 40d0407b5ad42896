"""SynthTalk generation speed on one core (issue 2 part 3; goal >= 2 three-second clips/s/core).

Generates N clips in this process (one OpenCV thread, the espeak-ng server beside it) after a
warm-up that loads dlib's models, builds the speakers' faces and starts the server (reported
separately: a corpus job pays it once per process and speaker). Each clip is the full path:
sentence, espeak-ng synthesis, mouth track, 160x160 rendering, H.264 + AAC encoding, .txt.

Reported per clip: wall time and CPU time (this process + the espeak server and its per-request
children), so the per-core figure stays meaningful on a machine shared with other jobs. Clips
are ~2-3.5 s long; the rate is also given in three-second equivalents (speech seconds / 3).

    python benchmarks/bench_synth.py [--clips 40] [--speakers 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import cv2

from imagintalk.config import load_params
from imagintalk.synth.clip import cached_identity, generate_clip
from imagintalk.synth.espeak import espeak_client
from imagintalk.synth.grammar import Sentence
from imagintalk.synth.plan import plan_corpus
from imagintalk.synth.voice import speak

GOAL = 2.0  # three-second clips per second per core


def server_cpu_s() -> float:
    """CPU seconds of the espeak server and its reaped per-request children (/proc, Linux)."""
    pid = espeak_client()._proc.pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="print the 15 most expensive functions")
    args = ap.parse_args()
    params = load_params()
    cfg, media = params.synth, params.media
    cv2.setNumThreads(1)
    per_speaker = -(-args.clips // args.speakers)
    plan = plan_corpus(args.speakers, per_speaker, args.seed, cfg)[: args.clips]

    t0 = time.perf_counter()
    for spec in {c.speaker.index: c for c in plan}.values():
        cached_identity(spec.speaker.identity, cfg.size, cfg.face_box_fraction)
    speak(Sentence(("set", "blue", "at", "a", "one", "now")), plan[0].speaker.voice, "neutral", 0.0,
          media.sample_rate)
    warmup = time.perf_counter() - t0

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, srv0, wall0 = time.process_time(), server_cpu_s(), time.perf_counter()
        if profiler:
            profiler.enable()
        speech_s = sum(generate_clip(spec, Path(tmp), cfg, media).duration_s for spec in plan)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - wall0
        cpu = (time.process_time() - cpu0) + (server_cpu_s() - srv0)
    n = len(plan)
    per_wall, per_cpu = n / wall, n / cpu
    eq_cpu = speech_s / 3.0 / cpu
    load = os.getloadavg()[0]
    print(f"clips: {n}, mean length {speech_s / n:.2f} s, warm-up {warmup:.2f} s (models, "
          f"{args.speakers} faces, espeak server)")
    print(f"wall: {wall:.2f} s = {1000 * wall / n:.0f} ms/clip -> {per_wall:.2f} clips/s "
          f"(load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"cpu:  {cpu:.2f} s = {1000 * cpu / n:.0f} ms/clip -> {per_cpu:.2f} clips/s/core, "
          f"{eq_cpu:.2f} three-second clips/s/core")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    verdict = "meets" if eq_cpu >= GOAL else "MISSES"
    print(f"bench_synth: {eq_cpu:.2f} three-second clips/s/core (cpu), {per_wall:.2f} clips/s wall, "
          f"{verdict} the goal of >= {GOAL:.0f}")


if __name__ == "__main__":
    main()
