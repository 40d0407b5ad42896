"""Face detection and 68-point landmarks behind one small interface (auto_avsr's
``detectors/<backend>`` split): the tracker and the ROI code never know which backend ran.

The dlib backend is the HOG frontal detector plus the iBUG 68-point shape predictor shipped in
``face_recognition_models``. The predictor runs either in dlib itself or, by default, compiled by
numba from the same model file (shape_predictor.py: the very same points, at about half of dlib's
~1 ms a frame in a tracker). Models are loaded once per process (a module-level lazy cache): Ray
workers call ``preprocess_clip`` many times and loading the predictor costs ~0.5-1.5 s.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imagintalk.config import FaceConfig
from imagintalk.errors import ConfigError


@dataclass(frozen=True)
class Box:
    """A face box in pixels (left, top, right, bottom), float."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.left + self.right) / 2, (self.top + self.bottom) / 2])

    def as_array(self) -> np.ndarray:
        return np.array([self.left, self.top, self.right, self.bottom], np.float32)


class FaceDetector(Protocol):
    """What the tracker needs from a backend. Images are uint8 H×W (gray) or H×W×3 (RGB)."""

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in the image, largest first (empty when none)."""
        ...

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """68 (x, y) points, float32 (68, 2), for the face in ``box``."""
        ...


@functools.cache
def face_recognition_models():
    """The face_recognition_models package (its import warns about pkg_resources; silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models as frm
    return frm


@functools.cache
def _dlib_hog():
    """dlib's frontal HOG detector. dlib decompresses it from a string in its library on every
    build (0.17 s of a fresh `speak`); its own serialisation, kept in the derived cache, loads in
    1 ms (derived_cache.py)."""
    import dlib

    from imagintalk.preprocess.derived_cache import cached_or_built, derived_cache_dir

    return cached_or_built(derived_cache_dir() / f"frontal_face_detector-dlib{dlib.__version__}.svm",
                           lambda p: dlib.fhog_object_detector(str(p)), dlib.get_frontal_face_detector,
                           lambda detector, tmp: detector.save(str(tmp)), "rebuilding dlib's face detector",
                           unreadable=(RuntimeError,))


@functools.cache
def _dlib_predictor():
    """dlib's own 68-point predictor: only for ``predictor_backend: dlib`` and colour frames (its
    100 MB model takes ~0.3-0.5 s to load, a fixed cost of every fresh `speak`)."""
    import dlib

    return dlib.shape_predictor(face_recognition_models().pose_predictor_model_location())


class DlibFaceDetector:
    """dlib HOG detector + 68-point shape predictor (both CPU, ~1.3 ms and ~1 ms on a 160 px face;
    the numba predictor about half of that)."""

    def __init__(self, upsample: int = 0, predictor: str = "numba"):
        if predictor not in ("numba", "dlib"):
            raise ConfigError("face.predictor_backend", f"unknown landmark predictor {predictor!r}")
        self.upsample = upsample
        self._hog = _dlib_hog()
        self._compiled = None
        if predictor == "numba":
            from imagintalk.preprocess.shape_predictor import shape_predictor

            self._compiled = shape_predictor(face_recognition_models().pose_predictor_model_location())

    def detect(self, image: np.ndarray) -> list[Box]:
        rects = self._hog(np.ascontiguousarray(image), self.upsample)
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        return sorted(boxes, key=lambda b: -b.width * b.height)

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        if self._compiled is not None and image.ndim == 2:  # (colour frames: dlib reads their luminance)
            return self._compiled.predict(image[None], np.array([_corners(box)], np.float64))[0]
        import dlib

        shape = _dlib_predictor()(np.ascontiguousarray(image), dlib.rectangle(*_corners(box)))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def landmarks_many(self, images: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """(N, 68, 2) points of N gray frames (N×H×W) at once: the compiled predictor then reads
        each cascade's leaves once for all of them (shape_predictor.py), the same points as N calls."""
        if self._compiled is not None and images.ndim == 3:
            return self._compiled.predict(images, np.array([_corners(b) for b in boxes], np.float64))
        return np.stack([self.landmarks(im, b) for im, b in zip(images, boxes, strict=True)])


def _corners(box: Box) -> tuple[int, int, int, int]:
    """dlib's rectangles are whole pixels."""
    return int(round(box.left)), int(round(box.top)), int(round(box.right)), int(round(box.bottom))


def make_detector(cfg: FaceConfig) -> FaceDetector:
    """The backend named by ``cfg.detector``."""
    if cfg.detector == "dlib":
        return DlibFaceDetector(upsample=cfg.upsample, predictor=cfg.predictor_backend)
    raise ConfigError("face.detector", f"unknown face detector backend {cfg.detector!r}")
