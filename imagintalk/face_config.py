"""Typed configuration of the face track, mouth ROI and identity (params.yaml ``face``). Kept apart
from imagintalk/config.py, which re-exports it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imagintalk.sections import Section


class FaceConfig(Section):
    """Face track, mouth ROI and identity (imagintalk/preprocess)."""

    detector: str = Field("dlib", pattern="^dlib$")  # FaceDetector backend
    # key-frame interval for dlib detection (between them the track follows the landmarks, and a
    # cut or a lost face is re-detected on the frame where it happens; face_track.py)
    detect_every: int = Field(25, ge=1)
    # Who runs the 68-point predictor: "numba" (dlib's model and algorithm compiled,
    # imagintalk/preprocess/shape_predictor.py: the same points, ~2x faster on a clip) or "dlib".
    predictor_backend: Literal["numba", "dlib"] = "numba"
    # Tracked frames landmarked together, up to the next key frame: the predictor then reads each
    # cascade's leaves once for the run instead of once a frame (memory traffic, not arithmetic, is
    # its cost; face_track.py). 1 = frame by frame, each box from the previous frame's landmarks
    # (dlib's own tracking, the accuracy reference); N > 1 places the run's boxes from the last
    # landmarks before it. 25 with detect_every 25: as close to the true landmarks as frame by frame
    # with detection every 10th frame, and a third less tracking time (results/README.md, issue 16).
    landmark_batch: int = Field(25, ge=1)
    upsample: int = 0               # dlib HOG upsampling; 1 for small faces
    # Frames larger than this (longest side) are downscaled for HOG detection only; HOG needs faces
    # of ~80 px, so 640 keeps a 1080p talking head (face ~1/3 of the height) at ~120 px.
    detect_max_side: int = 640
    smooth_window: int = 5          # frames for landmark smoothing
    roi_size: int = 96
    face_size: int = 150            # dlib descriptor chip
    # Frames sampled for the mean identity embedding (one descriptor network pass each).
    descriptor_frames: int = Field(1, ge=1)
    # Who runs dlib's descriptor network: "torch" (the same weights, imagintalk/preprocess/
    # dlib_resnet.py; several times faster than dlib-bin, which has no BLAS) or "dlib" itself.
    descriptor_backend: Literal["torch", "dlib"] = "torch"
    min_face_ratio: float = 0.8     # below: quarantine "face lost"
    max_gap: int = 5                # missed frames up to this run length are filled by interpolation
    # Tracked landmarks that move more than this × the inter-ocular distance in one frame mean the
    # tracker has lost the face: detect again on that frame instead of trusting the predictor.
    max_drift: float = 0.25
    # ... or when the face box's gray content correlates less than this with the previous frame's.
    min_track_similarity: float = 0.5
    ref_size: int = 256             # mean-face canvas side (auto_avsr's 256×256 reference)
    ref_face_scale: float = 120.0   # px per unit of dlib's mean face on the canvas: mouth ≈ 56 px of 96
    chip_padding: float = 0.25      # dlib.get_face_chip padding the descriptor was trained with
