"""Read audio (any container PyAV opens) as float32 mono at a fixed rate; write wav/flac."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf

from imagintalk.errors import MediaError
from imagintalk.media._open import open_container


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """First audio stream → float32 mono at ``sample_rate`` via FFmpeg's resampler.

    Samples before the stream's start are not invented: a stream that starts late is padded with
    silence at its head so sample 0 is time 0 of the container (video and audio stay aligned).
    """
    path = Path(path)
    chunks: list[np.ndarray] = []
    with open_container(path) as c:
        if not c.streams.audio:
            raise MediaError(path, "no audio track")
        stream = c.streams.audio[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        # Decoders emit whole codec frames; the container's stream duration says where the real
        # signal ends (AAC pads its last 1024-sample frame), so trim to it when it is known.
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in c.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise MediaError(path, "audio track has no decodable samples")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if declared is not None:
        audio = audio[: int(round(declared * sample_rate))]
    lead = int(round(max(start, 0.0) * sample_rate))
    if lead:
        audio = np.concatenate([np.zeros(lead, np.float32), audio])
    return audio


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio (for arrays already in memory)."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as F

    out = F.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), orig_sr, target_sr)
    return out.numpy()


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write wav (PCM 16) or flac by suffix; float input is clipped to [-1, 1]."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".wav", ".flac"):
        raise MediaError(path, f"unsupported audio format {suffix!r} (wav or flac)")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), data, sample_rate, subtype="PCM_16", format=suffix[1:].upper())
    return path
