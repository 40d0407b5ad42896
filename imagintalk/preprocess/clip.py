"""One manifest row -> everything a shard sample needs except the tokens (units and codes come
from the fitted tokenizers, applied by the shard writer to ``ClipFeatures.audio`` / ``.mel``).

Cheap refusals come first (media, length mismatch, silence), then the face track; a refused clip
raises a typed error naming the file and the reason, which batch callers quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from imagintalk.config import AudioFeatureConfig, Params
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.errors import AudioQualityError, ConfigError, FaceError
from imagintalk.features.audio import log_mel
from imagintalk.media import read_clip
from imagintalk.preprocess.detector import FaceDetector, make_detector
from imagintalk.preprocess.expression_features import normalised_landmarks
from imagintalk.preprocess.face_track import to_gray, track_faces
from imagintalk.preprocess.identity import identity_embedding
from imagintalk.preprocess.roi import make_mouth_rois, mouth_opening


@dataclass
class ClipFeatures:
    clip_id: str
    lips: np.ndarray            # uint8 T×96×96 grayscale mouth ROIs
    face: np.ndarray            # uint8 150×150×3 aligned RGB chip
    identity: np.ndarray        # float32 (128,) L2-normalised mean dlib descriptor
    mouth_open: np.ndarray      # float32 (T,) inner-lip gap / mouth width
    face_ratio: float           # fraction of frames with a measured face
    landmarks: np.ndarray       # float16 T×136 mean-face landmarks (NaN rows: face lost)
    audio: np.ndarray           # float32 (T·640,) 16 kHz mono, aligned to the frames
    mel: np.ndarray             # float16 (80, 4T) log-mel
    emotion: dict[str, Any]     # {label, intensity, probs: None (the expression stage reads landmarks)}
    fps: int
    av_mismatch_s: float
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.lips)


def audio_stats(audio: np.ndarray, cfg: AudioFeatureConfig) -> dict[str, float]:
    """Loudness, clipping and silence of a clip: the audits' inputs, and the silence check's."""
    a = np.asarray(audio, np.float32)
    n = len(a) // cfg.hop_length
    hops = a[: n * cfg.hop_length].reshape(n, cfg.hop_length) if n else np.zeros((0, cfg.hop_length))
    hop_rms = np.sqrt((hops.astype(np.float64) ** 2).mean(1)) if n else np.zeros(0)
    return {
        "audio_rms": float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) if len(a) else 0.0,
        "clipping_ratio": float(np.mean(np.abs(a) >= cfg.clip_level)) if len(a) else 0.0,
        "silence_ratio": float(np.mean(hop_rms < cfg.silence_rms)) if n else 1.0,
    }


def lip_stats(lips: np.ndarray) -> dict[str, float]:
    """Sharpness (mean variance of the Laplacian: blur and frozen frames score low) and brightness."""
    sharp = [cv2.Laplacian(f, cv2.CV_64F).var() for f in lips]
    return {"lip_sharpness": float(np.mean(sharp)), "lip_brightness": float(lips.mean())}


@dataclass
class VisualFeatures:
    """What the model sees of a clip: the same for training (shards) and inference (speak/serve)."""

    lips: np.ndarray            # uint8 T×96×96
    face: np.ndarray            # uint8 150×150×3
    identity: np.ndarray        # float32 (128,)
    mouth_open: np.ndarray      # float32 (T,)
    face_ratio: float
    landmarks: np.ndarray       # float16 T×136 (imagintalk.preprocess.expression_features)


def preprocess_frames(frames: np.ndarray, params: Params, path: str | None = None,
                      detector: FaceDetector | None = None) -> VisualFeatures:
    """25 fps RGB frames -> mouth ROIs, aligned face, identity, mouth opening.

    Raises FaceError naming ``path`` when the face is found on fewer than ``face.min_face_ratio``
    of the frames (no face at all, or lost for most of the clip).
    """
    fcfg = params.face
    gray = to_gray(frames)
    track = track_faces(gray, fcfg, detector or make_detector(fcfg))
    if not track.any_found:
        raise FaceError(path, "no face found")
    if track.face_ratio < fcfg.min_face_ratio:
        raise FaceError(path, f"face found on {track.face_ratio:.0%} of frames (min {fcfg.min_face_ratio:.0%})")
    chip, identity = identity_embedding(frames, track, fcfg)
    return VisualFeatures(make_mouth_rois(gray, track, fcfg), chip, identity, mouth_opening(track),
                          track.face_ratio, normalised_landmarks(track))


def preprocess_clip(row: ManifestRow, params: Params, detector: FaceDetector | None = None) -> ClipFeatures:
    """Read the row's clip and compute lips, face, identity, mouth opening, audio, mel and stats.

    Raises MediaError (unreadable), AudioQualityError (length mismatch beyond
    ``media.max_av_mismatch_frames``, or silent audio) and FaceError (face found on fewer than
    ``face.min_face_ratio`` of the frames).
    """
    media, acfg = params.media, params.audio
    if acfg.sample_rate != media.sample_rate:
        raise ConfigError("audio.sample_rate", f"{acfg.sample_rate} differs from media.sample_rate "
                                               f"{media.sample_rate}")
    clip = read_clip(row.video_path, row.audio_path, fps=media.fps, sample_rate=media.sample_rate,
                     max_mismatch_frames=media.max_av_mismatch_frames, max_pixels=media.max_decode_pixels)
    a_stats = audio_stats(clip.audio, acfg)
    if a_stats["audio_rms"] < acfg.silence_rms:
        raise AudioQualityError(row.audio_path or row.video_path,
                                f"silent audio (rms {a_stats['audio_rms']:.1e} < {acfg.silence_rms:g})")

    visual = preprocess_frames(clip.frames, params, row.video_path, detector)
    lips = visual.lips
    mel = log_mel(clip.audio, acfg).astype(np.float16)

    n = len(clip.frames)
    stats = {
        "face_ratio": visual.face_ratio,
        **lip_stats(lips),
        **a_stats,
        "av_mismatch_s": float(clip.av_mismatch_s),
        "n_frames": float(n),
        "duration_s": float(len(clip.audio) / media.sample_rate),
        "source_duration_s": float(row.duration_s),
    }
    return ClipFeatures(
        clip_id=row.clip_id, lips=lips, face=visual.face, identity=visual.identity,
        mouth_open=visual.mouth_open, face_ratio=visual.face_ratio, landmarks=visual.landmarks,
        audio=clip.audio, mel=mel,
        emotion={"label": row.emotion, "intensity": row.intensity, "probs": None},
        fps=clip.fps, av_mismatch_s=float(clip.av_mismatch_s), stats=stats,
    )
