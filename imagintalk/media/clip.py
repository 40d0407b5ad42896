"""A talking-face clip as the pipeline sees it: 25 fps frames and 16 kHz audio of matching length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.errors import AudioQualityError
from imagintalk.media.audio import read_audio
from imagintalk.media.video import DEFAULT_MAX_PIXELS, read_video


@dataclass
class AVClip:
    frames: np.ndarray      # uint8 T×H×W×3
    audio: np.ndarray       # float32 T·(sr/fps) samples
    fps: int
    sample_rate: int
    av_mismatch_s: float    # audio minus video duration before alignment

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def align_audio_to_video(
    audio: np.ndarray, n_frames: int, fps: int, sample_rate: int, max_mismatch_frames: float,
    path: str | Path | None = None,
) -> tuple[np.ndarray, float]:
    """Trim or zero-pad audio to exactly n_frames × (sr/fps) samples.

    Encoders add priming and padding (AAC: 1024+ samples), so small disagreements are normal and
    fixed here; a disagreement beyond ``max_mismatch_frames`` video frames means the streams do not
    belong together (cut, desynchronised) and raises AudioQualityError.
    """
    spf = sample_rate / fps
    target = int(round(n_frames * spf))
    mismatch = (len(audio) - target) / sample_rate
    if abs(mismatch) > max_mismatch_frames / fps + 1e-9:
        raise AudioQualityError(
            path, f"audio/video length mismatch of {mismatch:+.3f}s "
            f"(limit {max_mismatch_frames / fps:.3f}s = {max_mismatch_frames:g} frames)"
        )
    if len(audio) >= target:
        out = audio[:target]
    else:
        out = np.concatenate([audio, np.zeros(target - len(audio), np.float32)])
    return out, mismatch


def read_clip(
    video_path: str | Path, audio_path: str | Path | None = None, fps: int = 25,
    sample_rate: int = 16000, max_mismatch_frames: float = 1.0, max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> AVClip:
    """Read frames (resampled to ``fps``) and audio (from ``audio_path`` when the corpus keeps it
    apart, as GRID and MEAD do) and align their lengths."""
    video = read_video(video_path, fps=fps, max_pixels=max_pixels)
    audio = read_audio(audio_path or video_path, sample_rate=sample_rate)
    audio, mismatch = align_audio_to_video(
        audio, len(video.frames), fps, sample_rate, max_mismatch_frames, path=audio_path or video_path
    )
    return AVClip(video.frames, audio, fps, sample_rate, mismatch)
