"""Landmarks -> mouth ROI, as auto_avsr and AV-HuBERT crop it (DESIGN.md §2).

Per frame: landmarks smoothed over time -> similarity transform of the stable points (nose
bridge, eye corners, mouth corners) onto dlib's mean face drawn on a ``ref_size`` canvas -> a
``roi_size`` square centred on the mean of the mouth points 48–67 in that canvas. The canvas warp
and the crop are composed into one affine map so each frame is resampled once, straight into the
96×96 grayscale crop. This module knows nothing about which detector produced the landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

from imagintalk.config import FaceConfig
from imagintalk.preprocess.face_track import FaceTrack, to_gray
from imagintalk.preprocess.mean_face import MOUTH, STABLE_POINTS, mean_face

# Inner-lip point pairs (upper, lower) of the 68-point markup, and the mouth corners.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def smooth_landmarks(landmarks: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` frames (edges padded by repetition), float32."""
    lm = np.asarray(landmarks, np.float32)
    if window <= 1 or len(lm) < 2:
        return lm.copy()
    half = window // 2
    padded = np.concatenate([np.repeat(lm[:1], half, 0), lm, np.repeat(lm[-1:], window - 1 - half, 0)])
    csum = np.cumsum(np.concatenate([np.zeros_like(lm[:1]), padded]), axis=0, dtype=np.float64)
    return ((csum[window:] - csum[:-window]) / window).astype(np.float32)


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping each point set of ``src``
    (T×N×2) onto ``dst`` (N×2), as T×2×3 matrices. In 2-D the least-squares similarity has a
    closed form (Umeyama 1991 without its SVD): no reflection, so a mirrored landmark set cannot
    flip the crop."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(1, keepdims=True), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = np.maximum((s0 ** 2).sum((1, 2)), 1e-12)
    a = (s0[..., 0] * d0[:, 0] + s0[..., 1] * d0[:, 1]).sum(1) / var_s
    b = (s0[..., 0] * d0[:, 1] - s0[..., 1] * d0[:, 0]).sum(1) / var_s
    m = np.empty((len(src), 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = a, -b, b, a
    m[:, :, 2] = mu_d - np.einsum("tij,tj->ti", m[:, :, :2], mu_s[:, 0])
    return m


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares similarity mapping the points ``src`` onto ``dst`` (N×2 each)."""
    return similarity_transforms(np.asarray(src)[None], dst)[0]


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2×3 affine matrix."""
    pts = np.asarray(points, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def reference_points(cfg: FaceConfig, indices: tuple[int, ...] = STABLE_POINTS) -> np.ndarray:
    """Mean-face positions of ``indices`` on the ``ref_size`` canvas, the face centred on it."""
    return mean_face(indices, size=cfg.ref_face_scale, offset=(cfg.ref_size - cfg.ref_face_scale) / 2)


def align_to_mean_face(landmarks: np.ndarray, cfg: FaceConfig) -> np.ndarray:
    """Per-frame 2×3 transforms (T×2×3) from frame pixels onto the mean-face canvas, fitted on the
    temporally smoothed stable points."""
    smooth = smooth_landmarks(landmarks, cfg.smooth_window)
    ref = reference_points(cfg)
    idx = list(STABLE_POINTS)
    return similarity_transforms(smooth[:, idx], ref)


def mouth_roi_transforms(track: FaceTrack, cfg: FaceConfig) -> np.ndarray:
    """T×2×3 maps from frame pixels into the ``roi_size`` crop (mouth centre -> crop centre)."""
    if not track.any_found:
        raise ValueError("no face in the track: nothing to crop")
    to_canvas = align_to_mean_face(track.landmarks, cfg)
    mouth = smooth_landmarks(track.landmarks, cfg.smooth_window)[:, list(MOUTH)].astype(np.float64).mean(1)
    # the map is affine, so the mean of the mapped mouth points is the mapped mean
    centre = np.einsum("tij,tj->ti", to_canvas[:, :, :2], mouth) + to_canvas[:, :, 2]
    out = to_canvas.copy()
    # pixel centres: the crop's centre sits between pixels (roi_size / 2 - 0.5)
    out[:, :, 2] += (cfg.roi_size / 2 - 0.5) - centre
    return out


def make_mouth_rois(frames: np.ndarray, track: FaceTrack, cfg: FaceConfig) -> np.ndarray:
    """uint8 T×roi×roi grayscale mouth crops (frames: T×H×W×3 RGB or T×H×W gray)."""
    gray = to_gray(np.asarray(frames))
    maps = mouth_roi_transforms(track, cfg)
    size = (cfg.roi_size, cfg.roi_size)
    return np.stack([
        cv2.warpAffine(g, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for g, m in zip(gray, maps, strict=True)
    ])


def mouth_opening(track: FaceTrack) -> np.ndarray:
    """Per-frame inner-lip gap over mouth width, float32 T (0 = closed; ~0.3-0.5 = wide open).

    Scale-free, so it compares across faces and zoom levels; sync metrics correlate it with the
    audio envelope. Frames without any face measurement give 0.
    """
    lm = track.landmarks.astype(np.float64)
    upper = lm[:, [p for p, _ in INNER_LIP_PAIRS]]
    lower = lm[:, [q for _, q in INNER_LIP_PAIRS]]
    gap = np.linalg.norm(lower - upper, axis=-1).mean(-1)
    width = np.linalg.norm(lm[:, MOUTH_RIGHT] - lm[:, MOUTH_LEFT], axis=-1)
    ratio = gap / np.maximum(width, 1e-6)
    return np.nan_to_num(ratio, nan=0.0).astype(np.float32)


def mouth_point_error(track: FaceTrack, reference: FaceTrack, cfg: FaceConfig) -> np.ndarray:
    """Distances (frames × 20, in pixels of the ``roi_size`` crop) between the mouth points 48–67 of
    ``track`` and of ``reference``, both mapped through the reference's ROI transforms, on the frames
    measured in both: how far a faster track's mouth lies from the reference's in what the model sees."""
    maps = mouth_roi_transforms(reference, cfg)
    both = track.found & reference.found
    mouth = list(MOUTH)
    a = np.stack([apply_affine(m, lm[mouth]) for m, lm in zip(maps[both], track.landmarks[both], strict=True)])
    b = np.stack([apply_affine(m, lm[mouth]) for m, lm in zip(maps[both], reference.landmarks[both], strict=True)])
    return np.linalg.norm(a - b, axis=-1)
