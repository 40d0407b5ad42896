"""Dubbing: put generated speech under the original picture.

The video stream is copied packet by packet when mp4 can carry its codec (no quality loss, no
re-encode cost, any resolution); otherwise it is decoded and re-encoded to H.264 frame by frame so
memory stays flat for long clips. The new audio is AAC; any original audio track is dropped.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from imagintalk.errors import MediaError
from imagintalk.media._open import open_container
from imagintalk.media.writer import _encode_audio

MP4_COPYABLE = {"h264", "hevc", "mpeg4", "av1", "vp9"}


def dub_video(video_in: str | Path, audio: np.ndarray, out: str | Path, sample_rate: int = 16000,
              audio_bitrate: int = 64000) -> Path:
    video_in, out = Path(video_in), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open_container(video_in) as src, av.open(str(tmp), "w", format="mp4") as dst:
            if not src.streams.video:
                raise MediaError(video_in, "no video stream to dub")
            vin = src.streams.video[0]
            if vin.codec_context.name in MP4_COPYABLE:
                vout = dst.add_stream_from_template(vin)
                aout = _audio_stream(dst, sample_rate, audio_bitrate)
                for packet in src.demux(vin):
                    if packet.dts is None:
                        continue
                    packet.stream = vout
                    dst.mux(packet)
            else:
                rate = vin.average_rate or Fraction(25)
                vout = dst.add_stream("libx264", rate=rate)
                vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
                vout.pix_fmt = "yuv420p"
                aout = _audio_stream(dst, sample_rate, audio_bitrate)
                for i, frame in enumerate(src.decode(vin)):
                    img = frame.to_ndarray(format="rgb24")[: vout.height, : vout.width]
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    vf.pts, vf.time_base = i, Fraction(1) / rate
                    for p in vout.encode(vf):
                        dst.mux(p)
                for p in vout.encode():
                    dst.mux(p)
            _encode_audio(dst, aout, np.asarray(audio, np.float32), sample_rate)
        tmp.replace(out)
    except av.error.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(out, f"cannot write dubbed video ({exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _audio_stream(dst, sample_rate: int, bitrate: int):
    stream = dst.add_stream("aac", rate=sample_rate, layout="mono")
    stream.bit_rate = bitrate
    return stream
