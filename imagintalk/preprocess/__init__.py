"""Per-clip preprocessing: face track -> mouth ROI, aligned face and identity; audio and mel.

Flow (one module per step): detector (backend) -> face_track -> roi / identity -> clip.
"""

from imagintalk.preprocess.clip import ClipFeatures, VisualFeatures, preprocess_clip, preprocess_frames
from imagintalk.preprocess.detector import Box, DlibFaceDetector, FaceDetector, make_detector
from imagintalk.preprocess.face_track import FaceTrack, track_faces
from imagintalk.preprocess.identity import identity_embedding
from imagintalk.preprocess.roi import make_mouth_rois, mouth_opening

__all__ = [
    "Box", "ClipFeatures", "DlibFaceDetector", "FaceDetector", "FaceTrack", "identity_embedding",
    "make_detector", "make_mouth_rois", "mouth_opening", "preprocess_clip", "preprocess_frames", "track_faces",
    "VisualFeatures",
]
