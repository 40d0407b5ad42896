"""The 68-point mean face our ROIs are aligned to, in dlib's own convention.

auto_avsr aligns to ``20words_mean_face.npy``, a file we cannot ship. dlib carries its own mean
face: the constants ``mean_face_shape_x/y`` in ``dlib/image_transforms/interpolation.h``
(``get_face_chip_details``), the average positions of landmarks 17–67 of the iBUG 300-W 68-point
markup in a unit square — the same template dlib aligns its face chips (and so its 128-d
descriptor) to. The jaw line (points 0–16) is not part of it because it moves with the mouth and
the pose. ``tests/test_preprocess_face.py`` checks that a similarity fit of these points (on dlib's
own subset, ``DLIB_CHIP_POINTS``) gives exactly the rotation and scale that
``dlib.get_face_chip_details`` computes, so the numbers below are dlib's.
"""

from __future__ import annotations

import numpy as np

# dlib/image_transforms/interpolation.h, get_face_chip_details: landmarks 17..67, unit square.
_MEAN_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)
_MEAN_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)
FIRST_POINT = 17
MEAN_FACE_UNIT = np.stack([_MEAN_X, _MEAN_Y], axis=1).astype(np.float64)  # (51, 2)

# 68-point indices (iBUG 300-W): the points that move least with speech and expression, used for
# the similarity alignment (nose bridge, eye corners, mouth corners — DESIGN.md §2).
NOSE_BRIDGE = (27, 28, 29, 30)
EYE_CORNERS = (36, 39, 42, 45)
MOUTH_CORNERS = (48, 54)
STABLE_POINTS = NOSE_BRIDGE + EYE_CORNERS + MOUTH_CORNERS
MOUTH = tuple(range(48, 68))
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
# The subset dlib itself fits its face chips on (eyebrows and lower lip left out as too mobile).
DLIB_CHIP_POINTS = tuple(i for i in range(17, 68) if not (i <= 26 or 55 <= i <= 59 or 65 <= i <= 67))


def mean_face(indices: tuple[int, ...], size: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """Template positions (len(indices), 2) of 68-point ``indices`` scaled by ``size`` and shifted
    by ``offset`` pixels; indices below 17 (jaw) have no template position."""
    idx = np.asarray(indices) - FIRST_POINT
    if (idx < 0).any():
        raise ValueError("dlib's mean face has no jaw points (0-16)")
    return MEAN_FACE_UNIT[idx] * size + offset
