"""Codec decoding: acoustic tokens (L levels × 50 Hz) → log-mel (80 × 100 Hz), or straight to a
waveform for a pretrained neural codec (``WaveformCodec``).

The data side's codec (``imagintalk.tokenizers.codec.ResidualCodec``) is fitted with the shards;
the model only needs its ``decode``, so any object with that method plugs in (``CodecDecoder``).
``ResidualCodebookDecoder`` is the same decoding rule as a torch module — the sum of each level's
codebook vector, each 50 Hz vector holding its two 100 Hz mel frames stacked (the data side's
``stack_pairs`` layout; codebooks of plain n_mels vectors are repeated twice) — so that decoding runs on
the model's device in a batch, and so that tests and benchmarks have a codec without fitting one.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from imagintalk.models.config import VocabConfig


@runtime_checkable
class CodecDecoder(Protocol):
    def decode(self, codes: Any) -> Any:
        """codes int (L, 2T) → log-mel float (n_mels, 4T) (numpy array or tensor)."""
        ...


@runtime_checkable
class WaveformCodec(Protocol):
    """A codec that decodes its tokens straight to a waveform (a pretrained neural codec,
    imagintalk/tokenizers/neural_codec.py): no mel, no vocoder after it."""

    def decode_waveform(self, codes: Tensor, token_lengths: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
        """codes B×L×N (valid up to token_lengths) → (waveforms B×S at sample_rate, lengths B)."""
        ...


class ResidualCodebookDecoder(nn.Module):
    """Residual-VQ decoding from L codebooks of shape V × n_mels."""

    def __init__(self, codebooks: Tensor, mels_per_token: int = 2, stacked: bool = True):
        super().__init__()
        self.register_buffer("codebooks", codebooks.float())  # L×V×n_mels
        self.mels_per_token = mels_per_token
        self.stacked = stacked  # codewords hold the token's m frames stacked (m·n_mels), else one frame

    @classmethod
    def random(cls, vocab: VocabConfig, seed: int = 0) -> ResidualCodebookDecoder:
        """Codebooks with decreasing residual scale per level (as a fitted residual codec has)."""
        g = torch.Generator().manual_seed(seed)
        scale = 0.5 ** torch.arange(vocab.codec_levels, dtype=torch.float32)
        m = vocab.mels_per_frame // vocab.units_per_frame
        books = torch.randn(vocab.codec_levels, vocab.codebook_size, m * vocab.n_mels, generator=g)
        books = books * scale[:, None, None]
        books[0] += -6.0  # level 0 carries the mean log-mel level
        return cls(books, m)

    @classmethod
    def from_codec(cls, codec: Any) -> ResidualCodebookDecoder:
        """The torch form of the data side's ``ResidualCodec`` (its codebooks and frame layout)."""
        m = int(codec.meta.get("mels_per_token", 1))
        return cls(torch.from_numpy(np.asarray(codec.codebooks, np.float32)), 2, stacked=m == 2)

    def decode_batch(self, codes: Tensor) -> Tensor:
        """B×L×N → B×n_mels×(mels_per_token·N)."""
        levels = torch.arange(codes.shape[1], device=codes.device)
        vecs = self.codebooks[levels[None, :, None], codes.long()].sum(dim=1)  # B×N×dim
        b, n, dim = vecs.shape
        m = self.mels_per_token
        if self.stacked:  # [frame 2i; frame 2i+1] per token
            return vecs.view(b, n, m, dim // m).reshape(b, n * m, dim // m).transpose(1, 2)
        return vecs.repeat_interleave(m, dim=1).transpose(1, 2)

    def decode(self, codes: Any) -> Tensor:
        codes = torch.as_tensor(np.asarray(codes) if not isinstance(codes, Tensor) else codes)
        return self.decode_batch(codes.to(self.codebooks.device)[None])[0]


def decode_batch(decoder: CodecDecoder, codes: Tensor, token_lengths: Tensor, n_mels: int,
                 mels_per_token: int) -> Tensor:
    """Decode a padded batch of codes (B×L×N) with any codec → mel B×n_mels×(m·N) on the codes'
    device, zero past each sample's valid tokens (each sample is decoded over those only)."""
    b, _, n = codes.shape
    if isinstance(decoder, ResidualCodebookDecoder):
        valid = torch.arange(n * mels_per_token, device=codes.device)[None] < (token_lengths * mels_per_token)[:, None]
        return decoder.decode_batch(codes) * valid[:, None, :]
    out = torch.zeros(b, n_mels, n * mels_per_token, device=codes.device)
    for i, length in enumerate(token_lengths.tolist()):
        mel = torch.as_tensor(decoder.decode(codes[i, :, :length].cpu().numpy())).float()
        expected = (n_mels, length * mels_per_token)
        if tuple(mel.shape) != expected:
            raise ValueError(f"{type(decoder).__name__}.decode returned {tuple(mel.shape)}, expected {expected}")
        out[i, :, : mel.shape[1]] = mel.to(codes.device)
    return out
