"""`imagintalk speak` real-time factor and peak memory (3-s and 30-s clips, CPU), and serving
throughput / p95 latency at 1, 2, 4 and 8 concurrent clients on loopback.

Uses the champion in the working directory's MLflow (run `make demo` first), or ``--model URI``.
RTF = wall seconds of the whole speak path (decode, face track, crops, generation, vocoder) per
second of speech. Each speak measurement runs in a fresh process so its peak RSS is its own.

    .venv/bin/python benchmarks/bench_speak.py [--model models:/imagintalk@champion] [--requests 8]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test fixtures: sample_media


def _speak_once(args: tuple[str, str, str]) -> tuple[float, float, float]:
    model, video, tracking = args
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    from imagintalk.config import load_params
    from imagintalk.serve.inference import Speaker

    params = load_params()
    speaker = Speaker(model, params.model_copy(update={"speak": params.speak.model_copy(
        update={"max_duration_s": 120.0})}), owns_process=True)  # as `imagintalk speak` loads it
    t0 = time.perf_counter()
    speech = speaker.speak(video)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wall, len(speech.audio) / speech.sample_rate, peak_mb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models:/imagintalk@champion")
    ap.add_argument("--tracking", default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}"))
    ap.add_argument("--requests", type=int, default=8, help="requests per client level")
    args = ap.parse_args()
    from sample_media import write_talking_clip

    tmp = Path(tempfile.mkdtemp(prefix="bench-speak-"))
    clips = {"3 s": write_talking_clip(tmp / "c3.mp4", n_frames=75).path,
             "30 s": write_talking_clip(tmp / "c30.mp4", n_frames=750,
                                        text="set blue at a one now bin red by b two soon").path}
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking
    from imagintalk.config import load_params
    from imagintalk.errors import ConfigError
    from imagintalk.serve.inference import Speaker

    try:
        Speaker(args.model, load_params())
    except ConfigError as exc:
        print(f"error: {exc} (bench_speak needs a registered model: run `make demo` first)")
        return 1
    ctx = mp.get_context("spawn")
    print("speak (one process per run, CPU)")
    print(f"{'clip':>6} {'wall s':>8} {'speech s':>9} {'RTF':>6} {'peak RSS MB':>12}")
    for name, path in clips.items():
        with ctx.Pool(1) as pool:
            wall, secs, peak = pool.apply(_speak_once, ((args.model, str(path), args.tracking),))
        print(f"{name:>6} {wall:8.2f} {secs:9.2f} {wall / secs:6.3f} {peak:12.0f}")

    from ray import serve

    from imagintalk.ray_session import start_ray
    from imagintalk.serve.app import SPEAK_PATH, start_server

    start_ray()  # before the port is picked: Ray's own listeners take fixed ports (52365, ...)
    port = _free_port()
    start_server(args.model, load_params(), port=port)
    url = f"http://127.0.0.1:{port}{SPEAK_PATH}"
    body = clips["3 s"].read_bytes()

    def post(_: int) -> float:
        t0 = time.perf_counter()
        req = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=300) as r:
            assert r.status == 200
            r.read()
        return time.perf_counter() - t0

    post(0)  # warm-up
    print("\nserving (3-s clip, POST /speak on loopback)")
    print(f"{'clients':>7} {'req/s':>7} {'p50 s':>7} {'p95 s':>7}")
    for clients in (1, 2, 4, 8):
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(clients) as pool:
            lat = sorted(pool.map(post, range(args.requests)))
        wall = time.perf_counter() - t0
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        print(f"{clients:7d} {args.requests / wall:7.2f} {statistics.median(lat):7.2f} {p95:7.2f}")
    serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
