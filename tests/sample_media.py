"""Test fixtures: small real talking-face clips for tests and benchmarks, made offline from photos that ship in
installed packages (scikit-image's astronaut, matplotlib's Grace Hopper) and espeak-ng speech.

The mouth is opened by pushing the pixels below the lip line down (falling off towards the chin)
and darkening the gap, so dlib's predictor sees a real opening; the opening follows the speech
envelope, and each frame is shifted by a sub-pixel jitter so the tracker has motion to follow.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from imagintalk.errors import FaceError, MediaError
from imagintalk.media import resample_audio, write_mp4
from imagintalk.preprocess.detector import DlibFaceDetector

# Face regions (top, bottom, left, right) of the packaged photos: square crops around the face.
_CROPS = {"astronaut": (30, 230, 120, 320), "grace_hopper": (90, 410, 110, 430)}
PHOTOS = tuple(_CROPS)


def photo(name: str, size: int = 160) -> np.ndarray:
    """A packaged portrait cropped around the face and resized to size×size, uint8 RGB."""
    if name == "astronaut":
        from skimage import data

        img = data.astronaut()
    elif name == "grace_hopper":
        import matplotlib.cbook as cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    else:
        raise ValueError(f"unknown photo {name!r} (one of {PHOTOS})")
    t, b, left, r = _CROPS[name]
    return cv2.resize(img[t:b, left:r], (size, size), interpolation=cv2.INTER_AREA)


def still_landmarks(face: np.ndarray) -> np.ndarray:
    """dlib landmarks (68×2) of the still photo: where the mouth is to be animated."""
    det = DlibFaceDetector()
    boxes = det.detect(face)
    if not boxes:
        raise FaceError(None, "no face in the sample photo")
    return det.landmarks(face, boxes[0]).astype(np.float64)


def _jaw_drop(lm: np.ndarray, amount: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Downward shift (px) of the content at output position (xs, ys) when the jaw drops ``amount``."""
    cx, cy = lm[48:68].mean(0)
    half_w = (lm[54, 0] - lm[48, 0]) / 2
    chin = max(lm[8, 1], cy + amount + 2)
    wx = np.clip(1 - ((xs - cx) / (half_w * 1.3)) ** 2, 0, 1)
    fall = np.clip((chin - ys) / (chin - cy), 0, 1)
    return np.where(ys > cy, amount * wx * np.where(ys < cy + amount, 1.0, fall), 0.0)


def open_mouth(face: np.ndarray, lm: np.ndarray, amount: float) -> np.ndarray:
    """The face with its jaw dropped by ``amount`` pixels at the mouth centre."""
    if amount <= 0:
        return face.copy()
    h, w = face.shape[:2]
    cx, cy = lm[48:68].mean(0)
    half_w = (lm[54, 0] - lm[48, 0]) / 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    wx = np.clip(1 - ((xs - cx) / (half_w * 1.3)) ** 2, 0, 1)
    below = ys > cy
    dy = _jaw_drop(lm, amount, xs, ys)
    out = cv2.remap(face, xs, (ys - dy).astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    gap = below & (ys < cy + amount * wx) & (wx > 0)
    out[gap] = (out[gap] * 0.25).astype(np.uint8) + np.array([40, 10, 10], np.uint8)
    return out


def _shifts(n: int, seed: int, jitter: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.uniform(-jitter, jitter, 2) for _ in range(n)])


def talking_frames(face: np.ndarray, openings: np.ndarray, seed: int = 0, jitter: float = 1.5) -> np.ndarray:
    """T×H×W×3 frames: the mouth opened by ``openings[t]`` px, each frame shifted sub-pixel."""
    lm = still_landmarks(face)
    h, w = face.shape[:2]
    out = []
    for amount, (dx, dy) in zip(openings, _shifts(len(openings), seed, jitter), strict=True):
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out.append(cv2.warpAffine(open_mouth(face, lm, float(amount)), m, (w, h),
                                  borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def true_landmarks(face: np.ndarray, openings: np.ndarray, seed: int = 0, jitter: float = 1.5) -> np.ndarray:
    """T×68×2: where the still photo's landmarks really are in ``talking_frames(face, openings,
    seed, jitter)`` (the jaw drop moves a point at y0 to the y with y - drop(y) = y0; then the
    frame's shift), so a tracker can be scored against the truth rather than against another tracker."""
    lm = still_landmarks(face)
    out = []
    for amount, shift in zip(openings, _shifts(len(openings), seed, jitter), strict=True):
        pts = lm.copy()
        if amount > 0:
            for _ in range(30):  # fixed point: the drop is a contraction (slope < 1)
                pts[:, 1] = lm[:, 1] + _jaw_drop(lm, float(amount), pts[:, 0], pts[:, 1])
        out.append(pts + shift)
    return np.stack(out).astype(np.float32)


def espeak(text: str, sample_rate: int = 16000, voice: str = "en-us") -> np.ndarray:
    """Speech from espeak-ng as float32 mono at ``sample_rate``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MediaError("espeak-ng", "not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run([exe, "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        audio, sr = sf.read(str(wav), dtype="float32")
    return resample_audio(audio.reshape(-1), sr, sample_rate)


def envelope_openings(audio: np.ndarray, n_frames: int, samples_per_frame: int = 640,
                      max_open: float = 9.0) -> np.ndarray:
    """Per-video-frame mouth opening (px) from the speech RMS envelope: louder -> wider."""
    a = np.pad(audio, (0, max(0, n_frames * samples_per_frame - len(audio))))[: n_frames * samples_per_frame]
    rms = np.sqrt((a.reshape(n_frames, samples_per_frame) ** 2).mean(1))
    return (max_open * rms / max(float(rms.max()), 1e-9)).astype(np.float32)


@dataclass
class SampleClip:
    path: Path
    frames: np.ndarray      # what was encoded (before H.264)
    audio: np.ndarray       # float32, n_frames * 640 samples
    openings: np.ndarray    # px per frame


def write_talking_clip(
    path: str | Path, photo_name: str = "astronaut", text: str = "set blue at a one now",
    n_frames: int = 50, seed: int = 0, size: int = 160, fps: int = 25, sample_rate: int = 16000,
) -> SampleClip:
    """An mp4 (H.264 + AAC) of a packaged face saying ``text``, mouth following the speech."""
    spf = sample_rate // fps
    speech = espeak(text, sample_rate)
    audio = np.zeros(n_frames * spf, np.float32)
    n = min(len(speech), len(audio))
    audio[:n] = speech[:n]
    openings = envelope_openings(audio, n_frames, spf)
    frames = talking_frames(photo(photo_name, size), openings, seed=seed)
    write_mp4(path, frames, fps, audio, sample_rate)
    return SampleClip(Path(path), frames, audio, openings)
