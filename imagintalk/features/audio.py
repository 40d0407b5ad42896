"""Audio features on the video clock: log-mel and MFCC at 100 Hz (4 frames per 25 fps video frame),
pooled to 50 Hz for tokens, and Griffin-Lim resynthesis from a log-mel.

Framing: the signal is reflect-padded by (n_fft - hop) / 2 on each side and framed without
torch's own centring, so T·640 samples give exactly 4T frames and frame i is centred on the middle
of its own 10 ms hop (samples [160i, 160i + 160)). Every consumer (shards, tokenizers, codec,
vocoder) can then index mel frames as 4 × video frame + j without off-by-one bookkeeping.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF

from imagintalk.config import AudioFeatureConfig
from imagintalk.errors import ConfigError


def n_frames(n_samples: int, cfg: AudioFeatureConfig) -> int:
    """Feature frames for ``n_samples``: one per hop (partial hops at the end are dropped)."""
    return n_samples // cfg.hop_length


@functools.lru_cache(maxsize=8)
def _mel_transform(cfg: AudioFeatureConfig) -> torchaudio.transforms.MelSpectrogram:
    # center=False: we pad ourselves so the frame count is exactly len // hop (module docstring)
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
        hop_length=cfg.hop_length, f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels,
        power=cfg.power, center=False,
    )


def _check(cfg: AudioFeatureConfig) -> None:
    if cfg.n_fft < cfg.hop_length or (cfg.n_fft - cfg.hop_length) % 2:
        raise ConfigError("audio", f"n_fft - hop_length must be even and >= 0 "
                                   f"(got {cfg.n_fft} - {cfg.hop_length})")


def _as_tensor(audio: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1)))


def mel_spectrogram(audio: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """Linear-amplitude mel (n_mels, len // hop), float32."""
    _check(cfg)
    x = _as_tensor(audio)
    n = n_frames(len(x), cfg)
    if n == 0:
        return np.zeros((cfg.n_mels, 0), np.float32)
    x = x[: n * cfg.hop_length]
    pad = (cfg.n_fft - cfg.hop_length) // 2
    mode = "reflect" if len(x) > pad else "constant"
    x = torch.nn.functional.pad(x[None, None], (pad, pad), mode=mode)[0, 0]
    with torch.no_grad():
        mel = _mel_transform(cfg)(x)
    return mel[:, :n].numpy().astype(np.float32, copy=False)


def log_mel(audio: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """log(max(mel, floor)) as float32 (n_mels, N) with N = len(audio) // hop exactly."""
    return np.log(np.maximum(mel_spectrogram(audio, cfg), cfg.log_floor)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _dct(n_mfcc: int, n_mels: int) -> np.ndarray:
    return AF.create_dct(n_mfcc, n_mels, norm="ortho").numpy().T.astype(np.float32)  # (n_mfcc, n_mels)


def mfcc(audio: np.ndarray, cfg: AudioFeatureConfig, log_mel_feat: np.ndarray | None = None) -> np.ndarray:
    """MFCC (n_mfcc, N): orthonormal DCT-II of our log-mel, so it shares the log-mel's framing.

    Pass ``log_mel_feat`` when it is already computed to skip the STFT.
    """
    lm = log_mel(audio, cfg) if log_mel_feat is None else log_mel_feat
    return (_dct(cfg.n_mfcc, cfg.n_mels) @ lm).astype(np.float32)


def deltas(feat: np.ndarray, win_length: int = 5) -> np.ndarray:
    """Regression deltas along time (torchaudio.functional.compute_deltas), float32 same shape."""
    if feat.shape[-1] == 0:
        return feat.astype(np.float32)
    with torch.no_grad():
        return AF.compute_deltas(torch.from_numpy(np.ascontiguousarray(feat, np.float32)),
                                 win_length=win_length).numpy()


def frames_50hz(feat: np.ndarray) -> np.ndarray:
    """Mean of consecutive pairs of 100 Hz frames: (C, N) -> (C, N // 2), i.e. 2 per video frame."""
    n = feat.shape[-1] // 2
    f = np.asarray(feat[..., : 2 * n], dtype=np.float32)
    return f.reshape(*f.shape[:-1], n, 2).mean(-1)


def stack_pairs(feat: np.ndarray) -> np.ndarray:
    """Consecutive pairs of 100 Hz frames stacked into one 50 Hz vector: (C, N) -> (2C, N // 2),
    rows [frame 2i; frame 2i+1]. Unlike ``frames_50hz`` it keeps both frames (nothing averaged)."""
    n = feat.shape[-1] // 2
    f = np.asarray(feat[..., : 2 * n], dtype=np.float32)
    c = f.shape[-2]
    return f.reshape(c, n, 2).transpose(2, 0, 1).reshape(2 * c, n)


def unstack_pairs(feat50: np.ndarray) -> np.ndarray:
    """Inverse of ``stack_pairs``: (2C, M) -> (C, 2M)."""
    f = np.asarray(feat50, np.float32)
    c2, m = f.shape
    return f.reshape(2, c2 // 2, m).transpose(1, 2, 0).reshape(c2 // 2, 2 * m)


def upsample_100hz(feat50: np.ndarray) -> np.ndarray:
    """Inverse layout of ``frames_50hz``: each 50 Hz frame repeated twice, (C, M) -> (C, 2M)."""
    return np.repeat(np.asarray(feat50, np.float32), 2, axis=-1)


@functools.lru_cache(maxsize=4)
def _inverse_transforms(cfg: AudioFeatureConfig):
    inv = torchaudio.transforms.InverseMelScale(
        n_stft=cfg.n_fft // 2 + 1, n_mels=cfg.n_mels, sample_rate=cfg.sample_rate,
        f_min=cfg.f_min, f_max=cfg.f_max,
    )
    # rand_init=False: the same mel always gives the same waveform (reproducible listening tests)
    gl = torchaudio.transforms.GriffinLim(
        n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        power=cfg.power, n_iter=cfg.griffin_lim_iters, rand_init=False,
    )
    return inv, gl


def griffin_lim(mel: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """Log-mel (n_mels, N) -> float32 waveform of N · hop samples, the zero-training vocoder.

    The mel is undone by least squares (InverseMelScale), the phase by Griffin-Lim. Torch's STFT
    centres frame i on sample i·hop while ours sit half a hop later, so the output is delayed by
    hop/2 to line up with the source.
    """
    _check(cfg)
    lm = np.asarray(mel, np.float32)
    n = lm.shape[-1]
    if n == 0:
        return np.zeros(0, np.float32)
    inv, gl = _inverse_transforms(cfg)
    with torch.no_grad():
        amp = torch.from_numpy(np.exp(lm))
        spec = inv(amp).clamp_min(0.0)
        wav = gl(spec)
    y = wav.numpy().astype(np.float32).reshape(-1)
    shift = cfg.hop_length // 2
    y = np.concatenate([np.zeros(shift, np.float32), y])[: n * cfg.hop_length]
    if len(y) < n * cfg.hop_length:
        y = np.pad(y, (0, n * cfg.hop_length - len(y)))
    peak = float(np.abs(y).max()) if len(y) else 0.0
    return y / peak * 0.95 if peak > 1.0 else y

