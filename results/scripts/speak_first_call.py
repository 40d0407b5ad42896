"""Where a fresh process's first `speak` goes: imports, model load, the first and a second call on a
3-s test-fixture clip, and a cProfile of the first call (top 35 by cumulative time).

    MLFLOW_TRACKING_URI=sqlite:////tmp/cq/mlflow.db \
        python results/scripts/speak_first_call.py models:/imagintalk@challenger
"""

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]


def main(model_uri: str) -> None:
    t0 = time.perf_counter()
    from imagintalk.config import load_params
    from imagintalk.serve.inference import Speaker
    t1 = time.perf_counter()
    from sample_media import write_talking_clip

    clip = write_talking_clip(Path(tempfile.mkdtemp()) / "c3.mp4", n_frames=75).path
    t2 = time.perf_counter()
    speaker = Speaker(model_uri, load_params())
    t3 = time.perf_counter()
    profile = cProfile.Profile()
    profile.enable()
    speaker.speak(clip)
    profile.disable()
    t4 = time.perf_counter()
    speaker.speak(clip)
    t5 = time.perf_counter()
    print(f"imports {t1 - t0:.2f} s, model load {t3 - t2:.2f} s, first speak {t4 - t3:.2f} s, second {t5 - t4:.2f} s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models:/imagintalk@champion")
