"""Read video frames with their presentation timestamps and resample them to a fixed rate.

Resampling goes by timestamp, not by frame counter, so variable-frame-rate input (phones,
screen captures, dropped frames) lands on the right 40 ms slot: each output slot k shows the
source frame that is on screen at time k/fps.

Memory is bounded by the frame size, not the input's resolution: a frame larger than
``max_pixels`` (``media.max_decode_pixels``, 1280×720 by default) is downscaled by FFmpeg's
scaler while decoding, so a 4K clip costs what a 720p one does (≈2.8 MB per decoded RGB frame,
≈69 MB per second of 25 fps output, plus the source frames of one clip while it is resampled).
A stream whose resolution changes midway is refused (MediaError) rather than stacked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.config import MediaConfig
from imagintalk.errors import MediaError
from imagintalk.media._open import open_container

DEFAULT_MAX_PIXELS = MediaConfig().max_decode_pixels


def decode_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) to decode at: the source's, or scaled down (aspect kept, even sides) so
    that width × height <= ``max_pixels``."""
    if not max_pixels or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


@dataclass
class VideoFrames:
    frames: np.ndarray        # uint8 T×H×W×3 (RGB) or T×H×W (gray)
    timestamps: np.ndarray    # float64 seconds, relative to the first frame
    fps: float                # rate of ``frames`` (after resampling) or the source's average

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def read_video(
    path: str | Path, fps: float | None = 25.0, gray: bool = False, max_frames: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> VideoFrames:
    """Decode every frame of the first video stream (downscaled to at most ``max_pixels``);
    resample to ``fps`` unless it is None."""
    path = Path(path)
    fmt = "gray" if gray else "rgb24"
    frames: list[np.ndarray] = []
    times: list[float] = []
    with open_container(path) as c:
        if not c.streams.video:
            raise MediaError(path, "no video stream")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        avg = stream.average_rate or stream.guessed_rate
        source = size = None
        for frame in c.decode(stream):
            t = frame.time
            if t is None:  # no pts: fall back on the nominal rate
                t = len(frames) / float(avg or 25)
            if source is None:
                source = (frame.width, frame.height)
                size = decode_size(frame.width, frame.height, max_pixels)
            elif (frame.width, frame.height) != source:
                raise MediaError(path, f"resolution changes mid-stream ({source[0]}x{source[1]} -> "
                                       f"{frame.width}x{frame.height} at {float(t):.2f} s)")
            assert size is not None
            frames.append(frame.to_ndarray(format=fmt, width=size[0], height=size[1], interpolation="AREA")
                          if size != source else frame.to_ndarray(format=fmt))
            times.append(float(t))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise MediaError(path, "video stream has no decodable frames")
    ts = np.asarray(times, dtype=np.float64)
    order = np.argsort(ts, kind="stable")  # B-frames or odd muxers: present in time order
    ts = ts[order] - ts[order][0]
    src_fps = float(avg) if avg else (len(ts) - 1) / max(ts[-1], 1e-6)
    if fps is None:
        return VideoFrames(np.stack([frames[i] for i in order]), ts, src_fps)
    idx, targets = _resample_index(ts, src_fps, fps)   # stack only the frames kept: one copy
    return VideoFrames(np.stack([frames[order[i]] for i in idx]), targets, float(fps))


def _resample_index(ts: np.ndarray, src_fps: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    period = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0 / src_fps
    span = ts[-1] + period
    n_out = max(1, int(round(span * fps)))
    targets = np.arange(n_out, dtype=np.float64) / fps
    # tolerance of a tenth of the output period absorbs timestamp rounding in the container
    idx = np.searchsorted(ts, targets + 0.1 / fps, side="right") - 1
    return np.clip(idx, 0, len(ts) - 1), targets


def resample_frames(video: VideoFrames, fps: float) -> VideoFrames:
    """Nearest-previous-frame resampling to ``fps`` by timestamp.

    The clip's span is last timestamp + one source frame period; the output has
    round(span × fps) frames, so a 3.00 s clip gives 75 frames at 25 fps whatever the source rate.
    """
    idx, targets = _resample_index(video.timestamps, video.fps, fps)
    return VideoFrames(video.frames[idx], targets, float(fps))
