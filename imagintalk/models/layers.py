"""Shared building blocks: padding-masked attention, Transformer and Conformer stacks, embeddings.

Every sequence op here takes a key mask ``mask`` (B×N bool, True = valid) and is written so that
padding never changes the outputs at valid positions: attention never attends to padded keys,
convolutions over time see zeros at padded steps (as they would beyond the end of an unpadded
sequence), and normalisations are per position (LayerNorm, never BatchNorm over time).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.models.config import EncoderConfig


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """B lengths → B×N bool mask (True = valid)."""
    n = int(max_len if max_len is not None else lengths.max().item())
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """Zero the padded steps of a B×N×C tensor."""
    return x * mask[..., None].to(x.dtype)


def check_nonempty(mask: Tensor, what: str) -> None:
    """Attention over a sequence with no valid step is undefined (NaN): refuse it early."""
    if mask.ndim != 2 or not bool(mask.any(dim=1).all()):
        raise ValueError(f"{what}: every sample needs at least one valid step")


def sinusoidal(positions: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) positions/timesteps: (...,) → (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device) / half)
    args = positions.float()[..., None] * freqs
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def add_positions(x: Tensor) -> Tensor:
    """Absolute sinusoidal positions; a padded tail leaves the valid positions' codes unchanged."""
    pos = torch.arange(x.shape[1], device=x.device)
    return x + sinusoidal(pos, x.shape[-1]).to(x.dtype)[None]


class Attention(nn.Module):
    """Multi-head attention on ``F.scaled_dot_product_attention`` with a key padding mask."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, kv_dim: int | None = None):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor, context: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int, dropout: float = 0.0):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class TransformerBlock(nn.Module):
    """Pre-LN self-attention + feed-forward block."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dropout)
        self.ff = FeedForward(cfg.dim, cfg.ff_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.ff(self.norm2(x)))


class ConformerConv(nn.Module):
    """Conformer convolution module with LayerNorm in place of BatchNorm (padding-safe statistics)."""

    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pointwise1 = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pointwise2 = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = F.glu(self.pointwise1(self.norm(x)), dim=-1)
        y = self.depthwise(zero_padding(y, mask).transpose(1, 2)).transpose(1, 2)
        return self.drop(self.pointwise2(F.silu(self.norm2(y))))


class ConformerBlock(nn.Module):
    """Macaron FF/2 → MHSA → conv → FF/2 → LN (Gulati et al. 2020, as in auto_avsr)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.dim
        self.ff1_norm, self.ff2_norm, self.attn_norm = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn = Attention(d, cfg.heads, cfg.dropout)
        self.conv = ConformerConv(d, cfg.conv_kernel, cfg.dropout)
        self.out_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + 0.5 * self.drop(self.ff1(self.ff1_norm(x)))
        x = x + self.drop(self.attn(self.attn_norm(x), mask))
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.drop(self.ff2(self.ff2_norm(x)))
        return self.out_norm(x)


class Encoder(nn.Module):
    """A stack of Transformer or Conformer blocks + final LayerNorm; positions added at the input."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        block = ConformerBlock if cfg.kind == "conformer" else TransformerBlock
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = add_positions(x)
        for blk in self.blocks:
            x = blk(x, mask)
        return zero_padding(self.norm(x), mask)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over the True entries of ``mask`` (same shape); 0 when none."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients into a module (its train()/eval() is handled by the owner)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module
