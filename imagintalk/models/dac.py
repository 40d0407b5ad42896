"""The Descript Audio Codec (DAC) generator, in descript-audio-codec's own module layout, so its
published weight files (``dac-16khz`` in the pretrained catalogue) load as they are.

Why in-tree: ``descript-audio-codec`` depends on ``descript-audiotools``, which pins protobuf 3.19,
and Dagster/MLflow/Ray need protobuf >= 4: the package cannot be installed beside our stack. As
with SyncNet (imagintalk/eval/sync.py), we keep the upstream module names and parameter shapes and
read the upstream file format, and nothing else:

- dac/model/dac.py (release 1.0.0, which also loads the 0.0.5 16 kHz weights): ``ResidualUnit``,
  ``EncoderBlock``, ``Encoder`` (``encoder.block.N``), ``DecoderBlock``, ``Decoder``
  (``decoder.model.N``), ``DAC`` with its keyword arguments (``latent_dim`` None: encoder_dim·2^len(rates));
- dac/nn/layers.py: ``WNConv1d``/``WNConvTranspose1d`` are convolutions under the old
  ``torch.nn.utils.weight_norm``, whose state dict holds ``weight_g`` (‖w‖ per output channel)
  and ``weight_v`` (the direction); ``Snake1d`` with its ``alpha`` (1×C×1);
- dac/nn/quantize.py: ``ResidualVectorQuantize.quantizers.N`` with ``in_proj``/``out_proj``
  (1×1 WN convs to and from the factorised ``codebook_dim`` space) and ``codebook`` (an Embedding):
  the nearest code is found between L2-normalised vectors, the raw codeword is what is decoded;
- audiotools/ml/layers/base.py ``BaseModel.save(path, package=False)``: ``torch.save({"state_dict":
  ..., "metadata": {"kwargs": {the constructor's arguments}}})``; ``load`` rebuilds ``DAC(**kwargs)``.

The weight norm is written out here (weight = g·v/‖v‖, the norm over every dim but 0) instead of
using ``torch.nn.utils.weight_norm``, deprecated in torch 2.x, so the state-dict names stay
upstream's; a file re-saved under ``torch.nn.utils.parametrizations.weight_norm``
(``parametrizations.weight.original0/1``) is mapped onto them on load. Only the generator is
here (encoder, quantizer, decoder): no discriminator, no losses, no quantizer dropout, no chunked
``compress``; ``encode``/``decode`` follow upstream's README use (``preprocess`` right-pads to a
whole hop, then ``encode``; ``decode(quantizer.from_codes(codes))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.errors import ArtifactError
from imagintalk.pretrained.weights import read_weights

# DAC's constructor arguments (the keys of a weight file's metadata["kwargs"]) and their upstream
# defaults (the 44 kHz model's); a file's own kwargs override them, as BaseModel.load does. The
# 16 kHz model's are its catalogue entry's ``config`` (imagintalk/pretrained/catalog.py).
DAC_DEFAULTS: dict[str, Any] = {
    "encoder_dim": 64, "encoder_rates": [2, 4, 8, 8], "latent_dim": None, "decoder_dim": 1536,
    "decoder_rates": [8, 8, 4, 2], "n_codebooks": 9, "codebook_size": 1024, "codebook_dim": 8,
    "quantizer_dropout": False, "sample_rate": 44100,
}


def dac_kwargs(given: dict[str, Any] | None) -> dict[str, Any]:
    """DAC's keyword arguments: upstream defaults, overridden by ``given`` (unknown keys dropped,
    as BaseModel.load drops them)."""
    return {**DAC_DEFAULTS, **{k: v for k, v in (given or {}).items() if k in DAC_DEFAULTS}}


def _norm_except_dim0(v: Tensor) -> Tensor:
    return v.norm(dim=tuple(range(1, v.dim())), keepdim=True)


class _WeightNorm:
    """weight = g · v / ‖v‖ as ``torch.nn.utils.weight_norm(module, dim=0)`` computes it, with its
    parameter names (``weight_g``, ``weight_v``)."""

    def _split_weight(self) -> None:
        w = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(_norm_except_dim0(w).clone())
        self.weight_v = nn.Parameter(w.clone())

    def _weight(self) -> Tensor:
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))


class WNConv1d(_WeightNorm, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self._weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self._weight(), self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class Snake1d(nn.Module):
    """x + sin²(αx)/α per channel (upstream adds 1e-9 to α before the reciprocal)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(shape[0], shape[1], -1)
        x = x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)
        return x.reshape(shape)


class ResidualUnit(nn.Module):
    def __init__(self, dim: int = 16, dilation: int = 1):
        super().__init__()
        pad = ((7 - 1) * dilation) // 2
        self.block = nn.Sequential(
            Snake1d(dim), WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=pad),
            Snake1d(dim), WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        pad = (x.shape[-1] - y.shape[-1]) // 2
        if pad > 0:
            x = x[..., pad:-pad]
        return x + y


class EncoderBlock(nn.Module):
    def __init__(self, dim: int = 16, stride: int = 1):
        super().__init__()
        self.block = nn.Sequential(
            ResidualUnit(dim // 2, dilation=1), ResidualUnit(dim // 2, dilation=3), ResidualUnit(dim // 2, dilation=9),
            Snake1d(dim // 2),
            WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class Encoder(nn.Module):
    def __init__(self, d_model: int = 64, strides: Sequence[int] = (2, 4, 8, 8), d_latent: int = 64):
        super().__init__()
        block: list[nn.Module] = [WNConv1d(1, d_model, kernel_size=7, padding=3)]
        for stride in strides:  # each block doubles the channels as it downsamples by its stride
            d_model *= 2
            block.append(EncoderBlock(d_model, stride=stride))
        block += [Snake1d(d_model), WNConv1d(d_model, d_latent, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*block)
        self.enc_dim = d_model

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    def __init__(self, input_dim: int = 16, output_dim: int = 8, stride: int = 1):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(input_dim, output_dim, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2)),
            ResidualUnit(output_dim, dilation=1), ResidualUnit(output_dim, dilation=3),
            ResidualUnit(output_dim, dilation=9),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class Decoder(nn.Module):
    def __init__(self, input_channel: int, channels: int, rates: Sequence[int], d_out: int = 1):
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(input_channel, channels, kernel_size=7, padding=3)]
        output_dim = channels
        for i, stride in enumerate(rates):
            input_dim, output_dim = channels // 2 ** i, channels // 2 ** (i + 1)
            layers.append(DecoderBlock(input_dim, output_dim, stride))
        layers += [Snake1d(output_dim), WNConv1d(output_dim, d_out, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class VectorQuantize(nn.Module):
    """One level: project to ``codebook_dim``, nearest L2-normalised codeword, project back."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size, self.codebook_dim = codebook_size, codebook_dim
        self.in_proj = WNConv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, kernel_size=1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """B×D×T residual → (its quantised value B×D×T, codes B×T)."""
        z_q, indices = self.decode_latents(self.in_proj(z))
        return self.out_proj(z_q), indices

    def decode_code(self, embed_id: Tensor) -> Tensor:
        return F.embedding(embed_id, self.codebook.weight).transpose(1, 2)

    def decode_latents(self, latents: Tensor) -> tuple[Tensor, Tensor]:
        b, d, t = latents.shape
        encodings = F.normalize(latents.transpose(1, 2).reshape(b * t, d))
        codebook = F.normalize(self.codebook.weight)
        dist = (encodings.pow(2).sum(1, keepdim=True) - 2 * encodings @ codebook.t()
                + codebook.pow(2).sum(1, keepdim=True).t())
        indices = (-dist).max(1)[1].view(b, t)
        return self.decode_code(indices), indices


class ResidualVectorQuantize(nn.Module):
    """SoundStream's residual VQ: level i quantises what levels < i left over."""

    def __init__(self, input_dim: int = 512, n_codebooks: int = 9, codebook_size: int = 1024,
                 codebook_dim: int | list[int] = 8):
        super().__init__()
        dims = [codebook_dim] * n_codebooks if isinstance(codebook_dim, int) else list(codebook_dim)
        self.n_codebooks, self.codebook_dim, self.codebook_size = n_codebooks, dims, codebook_size
        self.quantizers = nn.ModuleList([VectorQuantize(input_dim, codebook_size, dims[i])
                                         for i in range(n_codebooks)])

    def forward(self, z: Tensor, n_quantizers: int | None = None) -> tuple[Tensor, Tensor]:
        """B×D×T latents → (quantised B×D×T, codes B×n×T) with the first ``n_quantizers`` levels."""
        n = self.n_codebooks if n_quantizers is None else n_quantizers
        z_q, residual, codes = torch.zeros_like(z), z, []
        for quantizer in self.quantizers[:n]:
            z_q_i, indices = quantizer(residual)
            z_q = z_q + z_q_i
            residual = residual - z_q_i
            codes.append(indices)
        return z_q, torch.stack(codes, dim=1)

    def from_codes(self, codes: Tensor) -> Tensor:
        """B×n×T codes (n ≤ n_codebooks levels) → quantised latents B×D×T."""
        z_q = 0.0
        for i in range(codes.shape[1]):
            z_q = z_q + self.quantizers[i].out_proj(self.quantizers[i].decode_code(codes[:, i, :]))
        return z_q


class DAC(nn.Module):
    def __init__(self, encoder_dim: int = 64, encoder_rates: Sequence[int] = (2, 4, 8, 8),
                 latent_dim: int | None = None, decoder_dim: int = 1536,
                 decoder_rates: Sequence[int] = (8, 8, 4, 2), n_codebooks: int = 9,
                 codebook_size: int = 1024, codebook_dim: int | list[int] = 8, quantizer_dropout: float = 0.0,
                 sample_rate: int = 44100):
        super().__init__()
        self.encoder_dim, self.encoder_rates = encoder_dim, list(encoder_rates)
        self.decoder_dim, self.decoder_rates = decoder_dim, list(decoder_rates)
        self.latent_dim = encoder_dim * (2 ** len(encoder_rates)) if latent_dim is None else latent_dim
        self.n_codebooks, self.codebook_size, self.codebook_dim = n_codebooks, codebook_size, codebook_dim
        self.quantizer_dropout = quantizer_dropout   # training only; kept so a re-save writes it back
        self.sample_rate = sample_rate
        self.hop_length = math.prod(self.encoder_rates)
        self.encoder = Encoder(encoder_dim, self.encoder_rates, self.latent_dim)
        self.quantizer = ResidualVectorQuantize(self.latent_dim, n_codebooks, codebook_size, codebook_dim)
        self.decoder = Decoder(self.latent_dim, decoder_dim, self.decoder_rates)

    def kwargs(self) -> dict[str, Any]:
        """The constructor's arguments, as BaseModel.save records them in metadata["kwargs"]."""
        return {k: getattr(self, k) for k in DAC_DEFAULTS}

    def preprocess(self, audio: Tensor) -> Tensor:
        """Right-pad B×1×N to a whole number of hops (upstream's ``preprocess``)."""
        return F.pad(audio, (0, math.ceil(audio.shape[-1] / self.hop_length) * self.hop_length - audio.shape[-1]))

    def encode(self, audio: Tensor, n_quantizers: int | None = None) -> Tensor:
        """B×1×N waveform at ``sample_rate`` → codes B×n×ceil(N/hop) (int64)."""
        return self.quantizer(self.encoder(self.preprocess(audio)), n_quantizers)[1]

    def decode(self, codes: Tensor) -> Tensor:
        """B×n×T codes → B×1×S waveform in [-1, 1] (S ≈ T·hop: odd rates lose a few samples)."""
        return self.decoder(self.quantizer.from_codes(codes))


def save_dac(model: DAC, path: str | Path) -> Path:
    """The upstream weight file: what ``BaseModel.save(path, package=False)`` writes."""
    torch.save({"state_dict": model.state_dict(), "metadata": {"kwargs": model.kwargs()}}, path)
    return Path(path)


def _upstream_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Parametrised weight-norm names (``X.parametrizations.weight.original0/1``) → ``X.weight_g/_v``."""
    out = {}
    for key, value in state.items():
        for new, old in (("parametrizations.weight.original0", "weight_g"),
                         ("parametrizations.weight.original1", "weight_v")):
            if key.endswith(new):
                key = key[: -len(new)] + old
        out[key] = value
    return out


def load_dac(path: str | Path) -> DAC:
    """A DAC weight file (upstream's format) → the generator in eval mode. A file that is not one
    (no state_dict/metadata kwargs, a tensor missing or of another shape) is an ArtifactError
    naming it, in one line."""
    path = Path(path)
    refuse = "not a DAC weight file (descript-audio-codec's {state_dict, metadata: {kwargs}})"
    doc = read_weights(path, refuse)
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("state_dict"), dict) or \
            not isinstance(meta, dict) or not isinstance(meta.get("kwargs"), dict):
        raise ArtifactError(path, refuse)
    try:
        net = DAC(**dac_kwargs(meta["kwargs"]))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(path, f"{refuse}: its kwargs do not build a DAC ({exc})") from None
    state, own = _upstream_names(doc["state_dict"]), net.state_dict()
    missing = [k for k in own if k not in state]
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or bad:
        first = (missing or bad)[0]
        raise ArtifactError(path, f"{refuse}: {first} {'missing' if missing else 'has another shape'}")
    net.load_state_dict({k: state[k] for k in own})
    return net.eval()
