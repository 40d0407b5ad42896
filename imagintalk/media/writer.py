"""Write mp4 with H.264 video and AAC audio through PyAV (OpenCV cannot write H.264 here).

Output is byte-identical for identical input: one encoder thread, bit-exact muxing flags, no
creation time, so corpora generated from a seed hash the same on every machine.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from imagintalk.errors import MediaError


def write_mp4(
    path: str | Path, frames: np.ndarray, fps: int = 25, audio: np.ndarray | None = None,
    sample_rate: int = 16000, crf: int = 20, preset: str = "veryfast", audio_bitrate: int = 64000,
) -> Path:
    """frames: uint8 T×H×W×3 RGB (H, W even); audio: float32 mono in [-1, 1] or None."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(path, f"frames must be uint8 T×H×W×3, got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise MediaError(path, f"H.264 needs even width and height, got {frames.shape[2]}×{frames.shape[1]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with av.open(str(tmp), mode="w", format="mp4",
                     options={"fflags": "+bitexact"}) as out:
            out.metadata.clear() if hasattr(out.metadata, "clear") else None
            vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            # mbtree=0: x264's macroblock-tree rate control gives different bytes from run to run
            # on the same input here (even on one thread); without it the output is repeatable.
            vs.options = {"crf": str(crf), "preset": preset, "threads": "1", "x264-params": "mbtree=0"}
            vs.codec_context.flags |= av.codec.context.Flags.bitexact
            as_ = None
            if audio is not None:
                as_ = out.add_stream("aac", rate=sample_rate, layout="mono")
                as_.bit_rate = audio_bitrate
                as_.codec_context.flags |= av.codec.context.Flags.bitexact
            for i, img in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts = i
                vf.time_base = Fraction(1, 1) / vs.codec_context.framerate
                for packet in vs.encode(vf):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if as_ is not None:
                _encode_audio(out, as_, np.asarray(audio, np.float32), sample_rate)
        tmp.replace(path)
    except av.error.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(path, f"cannot encode mp4 ({exc})") from exc
    return path


def _encode_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    frame_size = stream.codec_context.frame_size or 1024
    audio = np.clip(audio.reshape(-1), -1.0, 1.0)
    pts = 0
    for start in range(0, len(audio), frame_size):
        # the last frame stays short (AAC accepts a small last frame): padding it would lengthen the
        # decoded audio by up to 1023 samples and put it out of step with the video
        chunk = np.ascontiguousarray(audio[start:start + frame_size])
        af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        af.sample_rate = sample_rate
        af.pts = pts
        af.time_base = Fraction(1, sample_rate)
        pts += frame_size
        for packet in stream.encode(af):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
