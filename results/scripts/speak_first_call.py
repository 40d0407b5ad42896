"""Where a fresh process's first `speak` goes: imports, model load, the first and a second call on a
3-s test-fixture clip, and a cProfile of the first call (top 35 by cumulative time, then top 12 by
own time).

The clip is written in this process and the measurement runs in a spawned one, as
benchmarks/bench_speak.py runs `speak`: the fixture's clip writer loads dlib, and measured in the
same process that load would be missing from the first call (it was, until 2026-11-30).

    MLFLOW_TRACKING_URI=sqlite:////tmp/cq/mlflow.db \
        python results/scripts/speak_first_call.py models:/imagintalk@challenger
"""

import cProfile
import io
import multiprocessing as mp
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]


def measure(model_uri: str, video: str) -> str:
    t0 = time.perf_counter()
    from imagintalk.config import load_params
    from imagintalk.serve.inference import Speaker
    t1 = time.perf_counter()
    speaker = Speaker(model_uri, load_params(), owns_process=True)  # as `imagintalk speak` loads it
    t2 = time.perf_counter()
    profile = cProfile.Profile()
    profile.enable()
    speaker.speak(video)
    profile.disable()
    t3 = time.perf_counter()
    speaker.speak(video)
    t4 = time.perf_counter()
    out = io.StringIO()
    out.write(f"imports {t1 - t0:.2f} s, model load {t2 - t1:.2f} s, first speak {t3 - t2:.2f} s, "
              f"second {t4 - t3:.2f} s\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(model_uri: str) -> None:
    from sample_media import write_talking_clip

    clip = write_talking_clip(Path(tempfile.mkdtemp()) / "c3.mp4", n_frames=75).path
    with mp.get_context("spawn").Pool(1) as pool:
        print(pool.apply(measure, (model_uri, str(clip))))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models:/imagintalk@champion")
