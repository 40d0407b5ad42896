"""CPU ms per 3-s clip of `track_faces` alone under several key-frame / landmark-run settings, the
settings taking turns pass by pass (tests/sample_media.py's 6 talking clips of the packaged photos,
160 px, 4 passes, one thread). Issue 16: what the landmark runs save.

    python results/scripts/track_time.py
"""

import sys
import tempfile
import time
from pathlib import Path

from common import PARAMS  # noqa: F401  (the repository root on sys.path, torch on one thread)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

import cv2  # noqa: E402
from sample_media import PHOTOS, write_talking_clip  # noqa: E402

from imagintalk.config import FaceConfig  # noqa: E402
from imagintalk.media import read_video  # noqa: E402
from imagintalk.preprocess.face_track import to_gray, track_faces  # noqa: E402

SETTINGS = [(10, 1), (10, 10), (25, 1), (25, 25), (75, 75)]  # (detect_every, landmark_batch)
PASSES = 4


def main():
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for i in range(6):
            path = f"{tmp}/t{i}.mp4"
            write_talking_clip(path, PHOTOS[i % len(PHOTOS)], n_frames=75, seed=i, size=160)
            clips.append(to_gray(read_video(path, fps=25).frames))
    cfgs = {f"detect_every {d}, landmark_batch {b}": FaceConfig(detect_every=d, landmark_batch=b) for d, b in SETTINGS}
    for cfg in cfgs.values():
        track_faces(clips[0], cfg)  # warm-up: the predictor's arrays, numba's kernels
    spent = dict.fromkeys(cfgs, 0.0)
    for _ in range(PASSES):
        for name, cfg in cfgs.items():
            t = time.process_time()
            for gray in clips:
                track_faces(gray, cfg)
            spent[name] += time.process_time() - t
    for name, s in spent.items():
        print(f"{name}: {1000 * s / (PASSES * len(clips)):.1f} CPU ms per clip")


if __name__ == "__main__":
    main()
