"""Track one face through a clip: detect on key frames, landmark every frame, fill short gaps.

auto_avsr runs the detector on every frame; at 25 fps a face barely moves between frames, so we
detect on every ``detect_every``-th frame and in between place the predictor's box from the
previous frame's landmarks (the box/landmark relation measured at the last detection keeps the
predictor's input framed as it was trained). The tracker is considered lost, and the detector
runs again on that very frame, when the face box's content stops resembling the previous frame's
(normalised cross-correlation of a small gray patch below ``min_track_similarity``: a cut, an
occlusion, a face leaving the frame: the predictor itself would happily place 68 points on noise)
or when the landmarks jump more than ``max_drift`` inter-ocular distances in one frame. A key
frame where the detector finds nothing is a miss, and until the face is found again every frame
is a detection frame. Runs of up to ``max_gap`` missed frames between two found
frames are filled by linear interpolation; longer runs and the clip's ends hold the nearest found
frame, so the ROI is always defined and ``found`` tells what was measured.

With ``landmark_batch`` > 1 the tracked frames between key frames are landmarked in runs of up to
that many frames, every box of a run placed from the landmarks of the frame before the run: the
predictor's cost is memory traffic (4 MB of regression-tree leaves a frame from a 65 MB model), and
a run reads each cascade's leaves once for all its frames (shape_predictor.py). The checks stay per
frame; a run ends at the first frame that fails one, and that frame is detected again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imagintalk.config import FaceConfig
from imagintalk.preprocess.detector import Box, FaceDetector, make_detector
from imagintalk.preprocess.mean_face import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

PATCH_SIZE = 32  # side of the gray patch compared between frames: enough to tell a face from noise


@dataclass
class FaceTrack:
    landmarks: np.ndarray   # float32 T×68×2 (NaN everywhere when no frame had a face)
    found: np.ndarray       # bool T: measured on this frame (detector or tracker)
    boxes: np.ndarray       # float32 T×4 (left, top, right, bottom) given to the predictor
    filled: np.ndarray      # bool T: not measured, filled by interpolation or by holding
    detections: int = 0     # detector calls (key frames + re-detections): a cost figure

    @property
    def n_frames(self) -> int:
        return len(self.found)

    @property
    def face_ratio(self) -> float:
        """Fraction of frames where a face was measured (not filled)."""
        return float(self.found.mean()) if len(self.found) else 0.0

    @property
    def any_found(self) -> bool:
        return bool(self.found.any())


@dataclass(frozen=True)
class _BoxRelation:
    """Detector box relative to the landmarks' extent, measured at the last detection."""

    offset: np.ndarray   # (box centre - landmark centre) / landmark extent
    size: np.ndarray     # (box width, box height) / landmark extent

    @classmethod
    def measure(cls, box: Box, lm: np.ndarray) -> _BoxRelation:
        c, ext = _centre_extent(lm)
        return cls((box.center - c) / ext, np.array([box.width, box.height]) / ext)

    def box_for(self, lm: np.ndarray) -> Box:
        c, ext = _centre_extent(lm)
        centre = c + self.offset * ext
        half = self.size * ext / 2
        return Box(centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1])


def _centre_extent(lm: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = lm.min(0), lm.max(0)
    return (lo + hi) / 2, float(max(hi[0] - lo[0], hi[1] - lo[1], 1.0))


def inter_ocular(lm: np.ndarray) -> float:
    """Outer-eye-corner distance: the face's own length unit."""
    return float(np.linalg.norm(lm[RIGHT_EYE_OUTER] - lm[LEFT_EYE_OUTER]))


def landmark_drift(lm: np.ndarray, prev: np.ndarray) -> float:
    """Mean landmark displacement between two frames in inter-ocular distances."""
    return float(np.linalg.norm(lm - prev, axis=1).mean() / max(inter_ocular(prev), 1.0))


def box_patch(img: np.ndarray, box: Box, size: int = PATCH_SIZE) -> np.ndarray | None:
    """The box's gray content at ``size``², zero-mean float32 (None when the box has left the frame)."""
    h, w = img.shape[:2]
    left, top = max(int(box.left), 0), max(int(box.top), 0)
    right, bottom = min(int(np.ceil(box.right)), w), min(int(np.ceil(box.bottom)), h)
    if right - left < 4 or bottom - top < 4:
        return None
    a = cv2.resize(img[top:bottom, left:right], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return a - a.mean()


def patch_similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Normalised cross-correlation of two ``box_patch``es (1 = identical, -1 when either is None)."""
    if a is None or b is None:
        return -1.0
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6))


def to_gray(frames: np.ndarray) -> np.ndarray:
    """T×H×W×3 RGB -> T×H×W uint8 (dlib's HOG and predictor work on luminance anyway)."""
    if frames.ndim == 3:
        return frames
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def detect_scaled(det: FaceDetector, img: np.ndarray, max_side: int) -> list[Box]:
    """Detect on a copy whose longest side is at most ``max_side`` (HOG's cost grows with the
    pixel count), boxes in full-frame pixels. Landmarks then run at full resolution in the box."""
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return det.detect(img)
    small = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return [Box(b.left / scale, b.top / scale, b.right / scale, b.bottom / scale) for b in det.detect(small)]


def _pick(boxes: list[Box], near: Box | None) -> Box:
    if near is None or len(boxes) == 1:
        return boxes[0]  # largest
    return min(boxes, key=lambda b: float(np.linalg.norm(b.center - near.center)))


def track_faces(frames: np.ndarray, cfg: FaceConfig, detector: FaceDetector | None = None) -> FaceTrack:
    """Landmarks for every frame of ``frames`` (T×H×W×3 RGB or T×H×W gray, uint8)."""
    det = detector or make_detector(cfg)
    gray = to_gray(np.asarray(frames))
    t_total = len(gray)
    lms = np.full((t_total, 68, 2), np.nan, np.float32)
    boxes = np.full((t_total, 4), np.nan, np.float32)
    found = np.zeros(t_total, bool)
    prev_lm: np.ndarray | None = None
    prev_box: Box | None = None
    relation: _BoxRelation | None = None
    n_detect = 0
    t = 0
    while t < t_total:
        if prev_lm is not None and relation is not None and t % cfg.detect_every != 0:
            stop = min(t_total, t + cfg.landmark_batch, (t // cfg.detect_every + 1) * cfg.detect_every)
            run, box = _tracked_run(gray, t, stop, prev_lm, relation, det, cfg)
            for lm in run:
                lms[t], boxes[t], found[t] = lm, box.as_array(), True
                t += 1
            if run:
                prev_lm, prev_box = run[-1], box
            if t == stop:
                continue
            # frame t lost the track: detect on this very frame
        n_detect += 1
        img = gray[t]
        candidates = detect_scaled(det, img, cfg.detect_max_side)
        if candidates:
            box = _pick(candidates, prev_box)
            lm = det.landmarks(img, box)
            relation = _BoxRelation.measure(box, lm)
            lms[t], boxes[t], found[t] = lm, box.as_array(), True
            prev_lm, prev_box = lm, box
        else:
            prev_lm = prev_box = None
        t += 1
    filled = _fill_gaps(lms, boxes, found, cfg.max_gap)
    return FaceTrack(lms, found, boxes, filled, n_detect)


def _tracked_run(gray: np.ndarray, start: int, stop: int, prev_lm: np.ndarray, relation: _BoxRelation,
                 det: FaceDetector, cfg: FaceConfig) -> tuple[list[np.ndarray], Box]:
    """Landmarks of frames ``start``..``stop``-1 in the box placed from ``prev_lm`` (the landmarks of
    frame ``start``-1), as far as the track holds: up to the first frame whose box content stops
    resembling the frame before, or whose landmarks jump more than ``max_drift``. The frames of a
    run are landmarked in one predictor call (``cfg.landmark_batch``; a run of one frame is dlib's
    frame-by-frame tracking)."""
    box = relation.box_for(prev_lm)
    n, before = 0, box_patch(gray[start - 1], box)
    while start + n < stop:
        patch = box_patch(gray[start + n], box)  # one box for the run: each frame's patch is read once
        if patch_similarity(before, patch) < cfg.min_track_similarity:
            break
        n, before = n + 1, patch
    if n == 0:
        return [], box
    many = getattr(det, "landmarks_many", None)
    predicted = (many(gray[start:start + n], [box] * n) if many is not None
                 else [det.landmarks(gray[start + k], box) for k in range(n)])
    run: list[np.ndarray] = []
    last = prev_lm
    for lm in predicted:
        if landmark_drift(lm, last) > cfg.max_drift:
            break
        run.append(lm)
        last = lm
    return run, box


def _fill_gaps(lms: np.ndarray, boxes: np.ndarray, found: np.ndarray, max_gap: int) -> np.ndarray:
    """In place: interpolate short interior gaps, hold the nearest found frame elsewhere."""
    idx = np.flatnonzero(found)
    filled = np.zeros(len(found), bool)
    if len(idx) == 0:
        return filled
    for t in np.flatnonzero(~found):
        after = np.searchsorted(idx, t)
        a = idx[after - 1] if after > 0 else None
        b = idx[after] if after < len(idx) else None
        if a is not None and b is not None and b - a - 1 <= max_gap:
            w = (t - a) / (b - a)
            lms[t] = (1 - w) * lms[a] + w * lms[b]
            boxes[t] = (1 - w) * boxes[a] + w * boxes[b]
        else:
            src = a if b is None or (a is not None and t - a <= b - t) else b
            lms[t], boxes[t] = lms[src], boxes[src]
        filled[t] = True
    return filled
