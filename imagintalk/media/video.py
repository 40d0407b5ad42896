"""Read video frames with their presentation timestamps and resample them to a fixed rate.

Resampling goes by timestamp, not by frame counter, so variable-frame-rate input (phones,
screen captures, dropped frames) lands on the right 40 ms slot: each output slot k shows the
source frame that is on screen at time k/fps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.errors import MediaError
from imagintalk.media._open import open_container


@dataclass
class VideoFrames:
    frames: np.ndarray        # uint8 T×H×W×3 (RGB) or T×H×W (gray)
    timestamps: np.ndarray    # float64 seconds, relative to the first frame
    fps: float                # rate of ``frames`` (after resampling) or the source's average

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def read_video(
    path: str | Path, fps: float | None = 25.0, gray: bool = False, max_frames: int | None = None
) -> VideoFrames:
    """Decode every frame of the first video stream; resample to ``fps`` unless it is None."""
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
        for frame in c.decode(stream):
            t = frame.time
            if t is None:  # no pts: fall back on the nominal rate
                t = len(frames) / float(avg or 25)
            frames.append(frame.to_ndarray(format=fmt))
            times.append(float(t))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise MediaError(path, "video stream has no decodable frames")
    ts = np.asarray(times, dtype=np.float64)
    order = np.argsort(ts, kind="stable")  # B-frames or odd muxers: present in time order
    ts = ts[order] - ts[order][0]
    stack = np.stack([frames[i] for i in order])
    src_fps = float(avg) if avg else (len(ts) - 1) / max(ts[-1], 1e-6)
    out = VideoFrames(stack, ts, src_fps)
    return resample_frames(out, fps) if fps is not None else out


def resample_frames(video: VideoFrames, fps: float) -> VideoFrames:
    """Nearest-previous-frame resampling to ``fps`` by timestamp.

    The clip's span is last timestamp + one source frame period; the output has
    round(span × fps) frames, so a 3.00 s clip gives 75 frames at 25 fps whatever the source rate.
    """
    ts = video.timestamps
    if len(ts) > 1:
        period = float(np.median(np.diff(ts)))
    else:
        period = 1.0 / video.fps
    span = ts[-1] + period
    n_out = max(1, int(round(span * fps)))
    targets = np.arange(n_out, dtype=np.float64) / fps
    # tolerance of a tenth of the output period absorbs timestamp rounding in the container
    idx = np.searchsorted(ts, targets + 0.1 / fps, side="right") - 1
    idx = np.clip(idx, 0, len(ts) - 1)
    return VideoFrames(video.frames[idx], targets, float(fps))
