"""Face identity: dlib's aligned face chip and its 128-d ResNet descriptor (our ArcFace stand-in).

``descriptor_frames`` frames spread over the clip are embedded (one batch) and averaged; the mean
is L2-normalised so cosine similarity is a dot product. The network runs in torch with dlib's own
weights (dlib_resnet.py: the same numbers to ~1e-6, several times faster than dlib-bin without
BLAS) or, with ``descriptor_backend: dlib``, in dlib itself. It is loaded once per process.
"""

from __future__ import annotations

import functools

import numpy as np

from imagintalk.config import FaceConfig
from imagintalk.preprocess.detector import face_recognition_models
from imagintalk.preprocess.dlib_resnet import DlibFaceResNet
from imagintalk.preprocess.face_track import FaceTrack


@functools.cache
def _descriptor_model(backend: str):
    path = face_recognition_models().face_recognition_model_location()
    if backend == "torch":
        return DlibFaceResNet(path)
    import dlib

    return dlib.face_recognition_model_v1(path)


def _shape(landmarks: np.ndarray, box: np.ndarray):
    import dlib

    lm = np.asarray(landmarks, np.float64)
    if np.isnan(box).any():
        lo, hi = lm.min(0), lm.max(0)
        box = np.array([lo[0], lo[1], hi[0], hi[1]])
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    return dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in lm])


def face_chip(frame: np.ndarray, landmarks: np.ndarray, box: np.ndarray, cfg: FaceConfig) -> np.ndarray:
    """Aligned RGB chip, uint8 face_size×face_size×3 (dlib.get_face_chip: eyes level, dlib's
    mean face, ``chip_padding`` around it — the alignment the descriptor was trained on)."""
    import dlib

    img = np.ascontiguousarray(frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, -1))
    return dlib.get_face_chip(img, _shape(landmarks, box), size=cfg.face_size, padding=cfg.chip_padding)


def face_descriptors(chips: np.ndarray, backend: str = "torch") -> np.ndarray:
    """The raw 128-d descriptors (N×128 float32, not normalised) of N aligned 150×150 RGB chips."""
    model = _descriptor_model(backend)
    if backend == "torch":
        return model.describe(np.asarray(chips))
    return np.stack([np.asarray(model.compute_face_descriptor(np.ascontiguousarray(c)), np.float32)
                     for c in chips])


def face_descriptor(chip: np.ndarray, backend: str = "torch") -> np.ndarray:
    """The raw 128-d descriptor of one aligned 150×150 chip, float32 (not normalised)."""
    return face_descriptors(np.asarray(chip)[None], backend)[0]


def sample_frames(track: FaceTrack, n: int) -> np.ndarray:
    """Up to ``n`` measured frames spread evenly over the clip (the middle one first when n = 1)."""
    idx = np.flatnonzero(track.found)
    if len(idx) == 0:
        return idx
    n = min(n, len(idx))
    pos = (np.arange(n) + 0.5) * len(idx) / n
    return idx[np.floor(pos).astype(int)]


def identity_embedding(
    frames: np.ndarray, track: FaceTrack, cfg: FaceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(chip, identity): the aligned RGB chip of the middle sampled frame, and the L2-normalised
    mean descriptor over ``cfg.descriptor_frames`` sampled frames (float32 128)."""
    picks = sample_frames(track, cfg.descriptor_frames)
    if len(picks) == 0:
        raise ValueError("no face in the track: no identity")
    chips = [face_chip(frames[t], track.landmarks[t], track.boxes[t], cfg) for t in picks]
    desc = face_descriptors(np.stack(chips), cfg.descriptor_backend).mean(0)
    norm = float(np.linalg.norm(desc))
    return chips[len(chips) // 2], (desc / max(norm, 1e-12)).astype(np.float32)
