"""Where a fresh process's first `speak` goes, measured as benchmarks/bench_speak.py measures it: in a
spawned process that has loaded the model and nothing else (speak_first_call.py writes its clip with
the test fixtures first, which loads dlib in the same process and hides that cost). Prints the wall
time of the first call and its cProfile, top 12 by own time.

    MLFLOW_TRACKING_URI=sqlite:////tmp/cq/mlflow.db python results/scripts/speak_fresh_process.py models:/imagintalk/1
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


def first_speak(model_uri: str, video: str) -> tuple[float, str]:
    from imagintalk.config import load_params
    from imagintalk.serve.inference import Speaker

    speaker = Speaker(model_uri, load_params())
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    speaker.speak(video)
    profile.disable()
    wall = time.perf_counter() - t0
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
    return wall, out.getvalue()


def main(model_uri: str) -> None:
    from sample_media import write_talking_clip

    clip = write_talking_clip(Path(tempfile.mkdtemp()) / "c3.mp4", n_frames=75).path
    with mp.get_context("spawn").Pool(1) as pool:
        wall, profile = pool.apply(first_speak, (model_uri, str(clip)))
    print(f"first speak of a 3-s clip in a fresh process: {wall:.2f} s")
    print(profile)


if __name__ == "__main__":
    main(sys.argv[1])
