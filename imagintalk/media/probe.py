"""Probe a media file: duration, frame rate, resolution, audio presence, codecs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagintalk.errors import MediaError
from imagintalk.media._open import open_container


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    variable_frame_rate: bool = False


def probe(path: str | Path) -> MediaInfo:
    """Container-level facts, without decoding every frame.

    Duration is the longest stream's (start + duration); when the container knows no stream
    durations (some raw/ADTS files) the container duration is used. Variable frame rate is flagged
    when the average and the base frame rates disagree by more than 1%.
    """
    path = Path(path)
    with open_container(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if v is None and a is None:
            raise MediaError(path, "no audio or video stream")
        durations = []
        for s in (v, a):
            if s is not None and s.duration is not None and s.time_base is not None:
                durations.append(float((s.start_time or 0) * s.time_base + s.duration * s.time_base))
        if not durations and c.duration is not None:
            durations.append(c.duration / 1_000_000)
        duration = max(durations) if durations else 0.0
        fps = vfr = None
        if v is not None:
            avg = v.average_rate or v.guessed_rate or v.base_rate
            fps = float(avg) if avg else None
            base = v.base_rate or v.guessed_rate
            vfr = bool(fps and base and abs(float(base) - fps) / fps > 0.01)
        return MediaInfo(
            path=str(path),
            duration_s=duration,
            has_video=v is not None,
            has_audio=a is not None,
            fps=fps,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            n_frames=(v.frames or None) if v is not None else None,
            video_codec=v.codec_context.name if v is not None else None,
            audio_codec=a.codec_context.name if a is not None else None,
            sample_rate=a.codec_context.sample_rate if a is not None else None,
            channels=a.codec_context.channels if a is not None else None,
            variable_frame_rate=bool(vfr),
        )
