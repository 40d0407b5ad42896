"""Media checks the ingest step runs on every file: one pass over the container's packets.

Opening a container is not enough to trust it: an mp4 whose index sits at the front opens fine
when its tail is cut off. So every packet is demuxed (no decoding, about as cheap as hashing),
the streams' real spans are measured and compared with what the header declares, and the first
video frame is decoded to prove the codec can read the data at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.errors import MediaError
from imagintalk.media._open import open_container


@dataclass(frozen=True)
class StreamSpan:
    start_s: float
    duration_s: float            # measured from the demuxed packets
    declared_s: float | None     # what the container header claims, when it says anything


@dataclass(frozen=True)
class MediaFacts:
    path: str
    video: StreamSpan | None
    audio: StreamSpan | None
    fps: float | None
    sample_rate: int | None


def _span(pts: list[int], last_duration: int, time_base: float, median_step: bool) -> tuple[float, float]:
    """(start, duration) in seconds of a stream from its packets' timestamps.

    Video uses the median frame step for the last frame (its packet duration is often 0 in FLV
    and MPEG-PS), which is exactly how ``read_video`` counts a clip's span; audio uses the last
    packet's own duration and starts counting at time 0.
    """
    ts = np.sort(np.asarray(pts, dtype=np.int64))
    if median_step:
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else float(last_duration)
        return float(ts[0]) * time_base, float(ts[-1] - ts[0] + step) * time_base
    # AAC priming packets sit before time 0 and are dropped by every decoder: not audio time
    first = max(int(ts[0]), 0)
    return float(ts[0]) * time_base, max(float(ts[-1] + last_duration - first), 0.0) * time_base


def inspect_media(path: str | Path, need_video: bool, truncation_tolerance_frames: float) -> MediaFacts:
    """Demux every packet of the first video and audio stream and decode one video frame.

    Raises MediaError for: unreadable/zero-length/garbled files (from ``open_container``), a
    missing video stream when ``need_video``, a stream without packets, no decodable frame, and a
    stream that ends well before the duration its header declares (truncated download).
    """
    path = Path(path)
    with open_container(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if need_video and v is None:
            raise MediaError(path, "no video stream")
        if v is None and a is None:
            raise MediaError(path, "no audio or video stream")
        streams = [s for s in (v, a) if s is not None]
        pts: dict[int, list[int]] = {s.index: [] for s in streams}
        last_dur: dict[int, int] = {s.index: 0 for s in streams}
        decoded = v is None
        for packet in c.demux(*streams):
            if not decoded and packet.stream is v:
                decoded = bool(packet.decode())   # the empty flush packet drains the decoder
            if packet.pts is None or packet.size == 0:
                continue
            pts[packet.stream.index].append(packet.pts)
            last_dur[packet.stream.index] = packet.duration or 0
        fps = None
        if v is not None and (v.average_rate or v.guessed_rate):
            fps = float(v.average_rate or v.guessed_rate)
        spans: dict[int, StreamSpan] = {}
        for s in streams:
            if not pts[s.index]:
                raise MediaError(path, f"{s.type} stream has no packets")
            tb = float(s.time_base)
            start, dur = _span(pts[s.index], last_dur[s.index], tb, median_step=s is v)
            declared = float(s.duration * tb) if s.duration else None
            spans[s.index] = StreamSpan(start, dur, declared)
        if not decoded:
            raise MediaError(path, "video stream has no decodable frames")
        frame_s = 1.0 / (fps or 25.0)
        for s in streams:
            span = spans[s.index]
            # Only a header longer than the data means a cut file; MPEG-PS under-declares.
            if span.declared_s and span.declared_s - span.duration_s > truncation_tolerance_frames * frame_s:
                raise MediaError(path, f"truncated: {s.type} stream ends at {span.duration_s:.2f} s "
                                       f"of the {span.declared_s:.2f} s its header declares")
        return MediaFacts(
            path=str(path),
            video=spans[v.index] if v is not None else None,
            audio=spans[a.index] if a is not None else None,
            fps=fps,
            sample_rate=a.codec_context.sample_rate if a is not None else None,
        )


def sha256_files(paths: list[Path], chunk_bytes: int) -> str:
    """One digest over the files' bytes in order (video, then its separate audio if any), so a
    change in either changes the clip's hash."""
    h = hashlib.sha256()
    for p in paths:
        try:
            with open(p, "rb") as f:
                while block := f.read(chunk_bytes):
                    h.update(block)
        except OSError as exc:
            raise MediaError(p, f"cannot read for hashing ({exc.strerror or exc})") from exc
    return h.hexdigest()
