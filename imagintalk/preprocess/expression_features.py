"""Per-frame face geometry for the facial-expression model: the 68 landmarks in mean-face units.

The mouth crops (``lips.npy``) show only the mouth, and ``face.jpg`` is one chip per clip: neither
sees the brows, the lids or how the face changes over time, which is where expression lives
(FACS action units 1, 2, 4, 5, 6, 12, 15 ...). The face track the shard step already computes has
all of it, so each record keeps it (``landmarks.npy``, T×136 float16: about 27 bytes a frame):

- each frame's 68 points are mapped by the similarity transform (rotation, uniform scale,
  translation) that best puts its nose bridge and eye corners onto dlib's mean face in a unit
  square (:mod:`imagintalk.preprocess.mean_face`); those points hardly move with expression, so
  smiles, frowns and raised brows stay in the coordinates while head pose and zoom leave them;
- frames where the face was not measured (``FaceTrack.found`` is False: the track filled them)
  are NaN rows, so whoever reads them knows the face was lost there.

A new expression model therefore never re-decodes a video: it trains and labels from these stored
features alone (and ``speak``/serving compute the very same features from the video).
"""

from __future__ import annotations

import numpy as np

from imagintalk.preprocess.face_track import FaceTrack
from imagintalk.preprocess.mean_face import EYE_CORNERS, NOSE_BRIDGE, mean_face
from imagintalk.preprocess.roi import similarity_transforms

# The alignment points: what moves least with expression (mouth corners move with a smile).
EXPRESSION_ANCHORS = NOSE_BRIDGE + EYE_CORNERS
N_LANDMARKS = 68
FEATURE_DIM = 2 * N_LANDMARKS


def normalised_landmarks(track: FaceTrack) -> np.ndarray:
    """float16 T×136: (x0, y0, x1, y1, ...) in mean-face units; NaN rows where the face was lost."""
    out = np.full((track.n_frames, FEATURE_DIM), np.nan, np.float32)
    found = np.flatnonzero(track.found)
    if len(found):
        lm = track.landmarks[found].astype(np.float64)
        m = similarity_transforms(lm[:, list(EXPRESSION_ANCHORS)], mean_face(EXPRESSION_ANCHORS))
        out[found] = (np.einsum("tij,tnj->tni", m[:, :, :2], lm) + m[:, None, :, 2]).reshape(len(found), -1)
    return out.astype(np.float16)
