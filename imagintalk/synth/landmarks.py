"""The 68-point (iBUG 300-W / dlib) landmark layout and the geometry SynthTalk does with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from imagintalk.synth.identity import IdentityRecipe

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSTRILS = np.arange(31, 36)
RIGHT_EYE = np.arange(36, 42)   # the subject's right, image left
LEFT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
UPPER_INNER = np.array([61, 62, 63])
LOWER_INNER = np.array([67, 66, 65])  # paired with UPPER_INNER column by column
UPPER_LIDS = np.array([37, 38, 43, 44])
LOWER_LIDS = np.array([41, 40, 47, 46])  # paired with UPPER_LIDS

# Index of each point's mirror image (left-right flip of the face).
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])

# Kernel width of each point in IOD: tight around lids and lips (they move against their
# neighbours), broad along the jaw (the chin carries the cheeks with it).
_WIDTH = np.full(68, 0.16, np.float32)
_WIDTH[JAW] = 0.30
_WIDTH[BROWS] = 0.16
_WIDTH[RIGHT_EYE] = _WIDTH[LEFT_EYE] = 0.07
_WIDTH[OUTER_LIPS] = 0.11
_WIDTH[INNER_LIPS] = 0.07


def mirror(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped image, re-indexed so each index keeps its meaning."""
    flipped = points.copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped[MIRROR]


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[RIGHT_EYE].mean(0), points[LEFT_EYE].mean(0)


def inter_ocular(points: np.ndarray) -> float:
    r, left = eye_centres(points)
    return float(np.linalg.norm(left - r))


def kernel_widths(iod: float) -> np.ndarray:
    return _WIDTH * np.float32(iod)


def collapse_inner_lips(points: np.ndarray) -> np.ndarray:
    """Upper and lower inner-lip points onto their midline: the closed mouth at rest."""
    out = points.copy()
    mid = (points[UPPER_INNER] + points[LOWER_INNER]) / 2
    out[UPPER_INNER] = mid
    out[LOWER_INNER] = mid
    return out


def face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face centre, unit 'right' (image left → right eye line) and unit 'down' vectors."""
    r, left = eye_centres(points)
    right_vec = (left - r) / max(np.linalg.norm(left - r), 1e-6)
    down = np.array([-right_vec[1], right_vec[0]], np.float32)
    return points.mean(0), right_vec.astype(np.float32), down


def edit_geometry(points: np.ndarray, recipe: IdentityRecipe, iod: float) -> np.ndarray:
    """Target landmarks of an identity: local shape edits in the face's own axes."""
    out = points.astype(np.float32).copy()
    centre, right, down = face_axes(points)
    mid_x = float((points - centre) @ right @ np.ones(68)) / 68  # ~0: midline through the centre
    side = np.sign((points - centre) @ right - mid_x)[:, None]
    jaw_w = np.zeros(68, np.float32)
    jaw_w[JAW] = np.sin(np.linspace(0, np.pi, len(JAW))) ** 0.5  # widest at the jaw angles
    jaw_w[8] *= 0.0  # the chin stays on the midline
    out += side * right * (recipe.jaw * iod * jaw_w)[:, None]
    eyes = np.concatenate([RIGHT_EYE, LEFT_EYE, BROWS])
    out[eyes] += side[eyes] * right * (recipe.eyes * iod / 2)
    out[BROWS] -= down * (recipe.brows * iod)
    out[NOSTRILS] += down * (recipe.nose * iod)
    out[NOSE_BRIDGE[1:]] += down * (recipe.nose * iod * np.float32([0.3, 0.6, 0.9]))[:, None]
    mouth = np.concatenate([OUTER_LIPS, INNER_LIPS])
    m_centre = points[mouth].mean(0)
    along = (points[mouth] - m_centre) @ right
    out[mouth] += right * (along * recipe.mouth)[:, None] + down * (recipe.mouth_y * iod)
    return out


def face_mask(points: np.ndarray, shape: tuple[int, int], iod: float,
              forehead: float = 0.55) -> np.ndarray:
    """Soft float mask of the face: the jaw line closed over the brows raised by ``forehead`` IOD."""
    _, _, down = face_axes(points)
    top = points[BROWS][::-1] - down * (forehead * iod)
    hull = cv2.convexHull(np.concatenate([points[JAW], top]).astype(np.float32))
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, hull.astype(np.int32), 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(0.08 * iod, 1.0))
