"""Fewer cascades of dlib's 68-point predictor (the first k of 15): mouth-point error against the
true landmarks of 8 rendered SynthTalk clips (4 speakers × 2), mouth-opening correlation with the
truth, and the face track's CPU time (issue 16: could a shorter cascade buy the preprocessing goal?).

    python results/scripts/predictor_cascades.py
"""

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests"), str(REPO)]

import numpy as np  # noqa: E402
from preprocess_accuracy import _as_track, summary, synthtalk_truth_clips  # noqa: E402

from imagintalk.config import load_params  # noqa: E402
from imagintalk.preprocess.detector import DlibFaceDetector  # noqa: E402
from imagintalk.preprocess.face_track import to_gray, track_faces  # noqa: E402
from imagintalk.preprocess.roi import mouth_opening, mouth_point_error  # noqa: E402
from imagintalk.preprocess.shape_predictor import ARRAYS, ShapePredictor  # noqa: E402


def main():
    params = load_params()
    cfg = params.face
    clips = synthtalk_truth_clips(4, 2, params)
    grays = [to_gray(c.frames) for c in clips]
    det = DlibFaceDetector()
    full = det._compiled
    track_faces(grays[0], cfg, det)  # warm-up
    for k in (15, 12, 10, 8):
        det._compiled = ShapePredictor.from_arrays(
            {a: getattr(full, a) if a == "initial" else np.ascontiguousarray(getattr(full, a)[:k]) for a in ARRAYS})
        t = time.process_time()
        tracks = [track_faces(g, cfg, det) for g in grays]
        spent = time.process_time() - t
        errs, rs = [], []
        for tr, clip in zip(tracks, clips, strict=True):
            truth = _as_track(clip.landmarks)
            errs.append(mouth_point_error(tr, truth, cfg))
            rs.append(np.corrcoef(mouth_opening(tr), mouth_opening(truth))[0, 1])
        print(f"{k} cascades: vs truth {summary(errs)}; opening r {np.mean(rs):.3f} (min {np.min(rs):.3f}); "
              f"track {1000 * spent / len(grays):.1f} CPU ms per clip", flush=True)


if __name__ == "__main__":
    main()
