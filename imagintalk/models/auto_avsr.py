"""auto_avsr's visual speech recognition encoder (Ma et al., "Auto-AVSR", ICASSP 2023), in its
upstream module layout, so its published checkpoints (``auto-avsr-vsr-lrs3-base`` in the
pretrained catalogue) load as they are.

Why in-tree: auto_avsr is not a package, and the ESPnet it vendors would bring its own stack. As
with DAC (imagintalk/models/dac.py) and SyncNet (imagintalk/eval/sync.py) we keep the upstream
module names and parameter shapes and read the upstream file, and nothing else. Re-implemented
from mpc001/auto_avsr (Apache-2.0; ESPnet's files inside it are Apache-2.0 too), read at commit
182b628 (2025-01) and 8acf580 (2024-11):

- ``espnet/nets/pytorch_backend/frontend/resnet.py`` (``backbones/conv3d_extractor.py`` and
  ``backbones/modules/resnet.py`` before 2025): ``Conv3dResNet`` = ``frontend3D`` (Conv3d 5×7×7,
  BatchNorm3d, Swish, MaxPool3d) + ``trunk`` (ResNet-18: ``layer1..4`` of ``BasicBlock``s);
  :class:`VisualFrontend` below is it, with our padding rule;
- ``espnet/nets/pytorch_backend/e2e_asr_conformer.py``: the E2E model's ``frontend``,
  ``proj_encoder`` (Linear 512 → adim) and ``encoder``;
- ``espnet/nets/pytorch_backend/encoder/conformer_encoder.py`` (``transformer/encoder.py``,
  ``encoder_layer.py`` and ``convolution.py`` before 2025): ``embed`` (relative positional
  encoding, no weights), ``encoders.N`` (macaron Conformer blocks: ``feed_forward_macaron``,
  ``self_attn``, ``conv_module``, ``feed_forward``, LayerNorms with eps 1e-12), ``after_norm``;
- ``transformer/attention.py`` ``RelPositionMultiHeadedAttention`` (``linear_q/k/v/out``,
  ``linear_pos``, ``pos_bias_u/v``, the "latest" relative shift), ``transformer/embedding.py``
  ``RelPositionalEncoding``, ``positionwise_feed_forward.py`` (``w_1``, ReLU, ``w_2``).

Checkpoint files: the model-zoo ``.pth`` is a flat state dict of the whole E2E model. The file
served today (README of 2025, md5 prefix c00a7) names the parts ``frontend.*``,
``proj_encoder.*``, ``encoder.*`` (this module's layout); the 2023 release (md5 ea3ec) kept the
front-end and the projection inside the encoder: ``encoder.frontend.*``, ``encoder.embed.0.*``.
Both load; ``decoder.*`` and ``ctc.*`` (the text heads) are ignored.

Two deliberate departures, which change nothing for an unpadded clip: padded frames are zeroed
before every temporal convolution (the 3-D stem and each block's depthwise conv), so a padded
clip's valid frames get exactly what they get alone; and the input normalisation (upstream's
``VideoTransform``: x/255, 88×88 crop, grayscale, Normalize(0.421, 0.165)) happens inside
:meth:`AutoAVSRVisualEncoder.forward` on our [0, 1] grayscale crops.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from imagintalk.errors import ArtifactError
from imagintalk.pretrained.weights import read_weights

ARCHITECTURE = "imagintalk.models.auto_avsr.AutoAVSRVisualEncoder"
LN_EPS = 1e-12   # espnet's LayerNorm
# E2E state-dict prefixes this module reads; the rest (decoder.*, ctc.*) is the text side
PARTS = ("frontend.", "proj_encoder.", "encoder.")
# the 2023 release's names → ours (front-end and projection were inside the encoder then)
LEGACY = (("encoder.frontend.", "frontend."), ("encoder.embed.0.", "proj_encoder."))


class AutoAVSRConfig(BaseModel):
    """The checkpoint's architecture. Defaults: the released base VSR model (its E2E and
    ConformerEncoder arguments); a catalogue entry's ``config`` overrides them (a tiny one in tests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adim: int = Field(768, ge=1)            # attention_dim
    aheads: int = Field(12, ge=1)           # attention_heads
    eunits: int = Field(3072, ge=1)         # linear_units
    elayers: int = Field(12, ge=1)          # num_blocks
    cnn_module_kernel: int = Field(31, ge=1)
    dropout_rate: float = 0.1               # blocks and positional encoding (fine-tuning only)
    attention_dropout_rate: float = 0.0
    # Conv3dResNet: fixed upstream (64, ResNet-18 widths); narrower only for tests
    stem_channels: int = 64
    trunk_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    trunk_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    # datamodule/transforms.py VideoTransform: the 88×88 grayscale crop it was trained on
    input_size: int = 88
    mean: float = 0.421
    std: float = 0.165

    @model_validator(mode="after")
    def _check(self) -> AutoAVSRConfig:
        if self.adim % self.aheads:
            raise ValueError(f"adim {self.adim} not divisible by aheads {self.aheads}")
        if self.cnn_module_kernel % 2 == 0:
            raise ValueError("cnn_module_kernel must be odd ('same' padding)")
        return self


# ---- front-end: Conv3dResNet -------------------------------------------------------------------

def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block with Swish activations (auto_avsr's ``relu_type="swish"``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.SiLU()
        self.conv2, self.bn2, self.relu2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout), nn.SiLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + (x if self.downsample is None else self.downsample(x)))


class ResNetTrunk(nn.Module):
    """ResNet-18 layout (2, 2, 2, 2 blocks) over per-frame stem features → one vector per frame."""

    def __init__(self, cin: int, widths: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        layers = []
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(*(BasicBlock(cin if j == 0 else w, w, stride if j == 0 else 1)
                                          for j in range(n))))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class VisualFrontend(nn.Module):
    """3D-conv stem + ResNet trunk: lips B×T×H×W (+ mask) → B×T×D, zeros at padded frames.

    ``cfg``: anything with ``stem_channels``, ``trunk_widths``, ``trunk_blocks`` (the lip
    aligner's own config, or an :class:`AutoAVSRConfig`)."""

    def __init__(self, cfg: Any):
        super().__init__()
        c = cfg.stem_channels
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, c, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False), nn.BatchNorm3d(c), nn.SiLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        # channels-last (NHWC) weights and activations through the 2D trunk: oneDNN's (and
        # cuDNN's) fast layout; a lip aligner training step took 0.89 s instead of 1.16 s on one
        # CPU thread (tiny preset, 8 clips of 3 s), with the same loss to 1e-6
        self.trunk = ResNetTrunk(c, tuple(cfg.trunk_widths), tuple(cfg.trunk_blocks)).to(
            memory_format=torch.channels_last)
        self.out_dim = cfg.trunk_widths[-1]

    def forward(self, lips: Tensor, mask: Tensor) -> Tensor:
        b, t = mask.shape
        x = (lips * mask[..., None, None].to(lips.dtype)).unsqueeze(1)       # B×1×T×H×W
        x = self.frontend3D[0](x).transpose(1, 2)[mask]                      # valid frames: N×C×H'×W'
        x = self.frontend3D[1:3](x.unsqueeze(2)).squeeze(2)                  # BN3d over valid frames only
        # the (1, 3, 3) max-pool is a 2D pool per frame: max_pool2d on N×C×H'×W' (channels-last)
        # computes exactly the MaxPool3d's output at a fraction of its CPU time (52 of 590 ms of
        # a tiny aligner step went to max_pool3d_with_indices)
        pool = self.frontend3D[3]
        x = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), pool.kernel_size[1:], pool.stride[1:],
                         pool.padding[1:])
        feats = self.trunk(x)
        out = feats.new_zeros(b, t, feats.shape[-1])
        out[mask] = feats
        return out


# ---- encoder: ConformerEncoder -------------------------------------------------------------------

class RelPositionalEncoding(nn.Module):
    """Scales the input by √adim and makes the relative position embeddings of lags T-1 … -(T-1)."""

    def __init__(self, d_model: int, dropout_rate: float):
        super().__init__()
        self.d_model, self.xscale = d_model, math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = x.shape[1]
        pos = torch.arange(t - 1, -t, -1, device=x.device, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, self.d_model, 2, device=x.device, dtype=torch.float32)
                        * -(math.log(10000.0) / self.d_model))
        pe = torch.zeros(2 * t - 1, self.d_model, device=x.device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        return self.dropout(x * self.xscale), self.dropout(pe.to(x.dtype)[None])


class RelPositionMultiHeadedAttention(nn.Module):
    """Transformer-XL attention: content (bias u) + position (bias v) scores, relatively shifted."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float):
        super().__init__()
        self.h, self.d_k = n_head, n_feat // n_head
        self.linear_q, self.linear_k = nn.Linear(n_feat, n_feat), nn.Linear(n_feat, n_feat)
        self.linear_v, self.linear_out = nn.Linear(n_feat, n_feat), nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout_rate)

    @staticmethod
    def rel_shift(x: Tensor) -> Tensor:
        """B×H×T×(2T-1) scores against lags T-1 … -(T-1) → B×H×T×T against key positions."""
        b, h, t, n = x.shape
        x = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
        return x[:, :, 1:].reshape(b, h, t, n)[..., : n // 2 + 1]

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(1, -1, self.h, self.d_k).transpose(1, 2)
        ac = ((q + self.pos_bias_u).transpose(1, 2)) @ k.transpose(-2, -1)
        bd = self.rel_shift(((q + self.pos_bias_v).transpose(1, 2)) @ p.transpose(-2, -1))
        scores = (ac + bd) / math.sqrt(self.d_k)
        pad = ~mask[:, None, None, :]                                        # padded keys
        attn = scores.masked_fill(pad, torch.finfo(scores.dtype).min).softmax(-1).masked_fill(pad, 0.0)
        out = (self.dropout(attn) @ v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(out)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim: int, hidden_units: int, dropout_rate: float):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(idim, hidden_units), nn.Linear(hidden_units, idim)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv + BatchNorm + Swish, pointwise conv."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.pointwise_cov1 = nn.Conv1d(channels, 2 * channels, 1)   # sic: upstream's name
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2,
                                        groups=channels)
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_cov2 = nn.Conv1d(channels, channels, 1)
        self.activation = nn.SiLU()

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = F.glu(self.pointwise_cov1(x.transpose(1, 2)), dim=1)
        x = x * mask[:, None, :].to(x.dtype)                                 # padding reads as zeros
        x = self.pointwise_cov2(self.activation(self.norm(self.depthwise_conv(x))))
        return x.transpose(1, 2)


class EncoderLayer(nn.Module):
    """Macaron Conformer block, pre-norm: ½FF, self-attention, convolution, ½FF, final norm."""

    def __init__(self, cfg: AutoAVSRConfig):
        super().__init__()
        d, p = cfg.adim, cfg.dropout_rate
        self.self_attn = RelPositionMultiHeadedAttention(cfg.aheads, d, cfg.attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(d, cfg.eunits, p)
        self.feed_forward_macaron = PositionwiseFeedForward(d, cfg.eunits, p)
        self.conv_module = ConvolutionModule(d, cfg.cnn_module_kernel)
        self.norm_ff, self.norm_mha = nn.LayerNorm(d, eps=LN_EPS), nn.LayerNorm(d, eps=LN_EPS)
        self.norm_ff_macaron = nn.LayerNorm(d, eps=LN_EPS)
        self.norm_conv, self.norm_final = nn.LayerNorm(d, eps=LN_EPS), nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = nn.Dropout(p)
        self.ff_scale = 0.5

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:
        x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.self_attn(self.norm_mha(x), pos_emb, mask))
        x = x + self.dropout(self.conv_module(self.norm_conv(x), mask))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: AutoAVSRConfig):
        super().__init__()
        self.embed = nn.Sequential(RelPositionalEncoding(cfg.adim, cfg.dropout_rate))
        self.encoders = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.elayers))
        self.after_norm = nn.LayerNorm(cfg.adim, eps=LN_EPS)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x, pos_emb = self.embed[0](x)
        for layer in self.encoders:
            x = layer(x, pos_emb, mask)
        return self.after_norm(x)


class AutoAVSRVisualEncoder(nn.Module):
    """Mouth crops → per-frame features: ``frontend`` → ``proj_encoder`` → ``encoder`` (the VSR
    model up to its CTC/attention heads). Input: B×T×H×W grayscale in [0, 1] (H = W =
    ``input_size``) and the B×T frame mask; output B×T×adim at the video frame rate, zeros at
    padded frames."""

    def __init__(self, cfg: AutoAVSRConfig | None = None):
        super().__init__()
        self.cfg = cfg or AutoAVSRConfig()
        self.frontend = VisualFrontend(self.cfg)
        self.proj_encoder = nn.Linear(self.cfg.trunk_widths[-1], self.cfg.adim)
        self.encoder = ConformerEncoder(self.cfg)
        self.out_dim = self.cfg.adim

    def forward(self, lips: Tensor, mask: Tensor) -> Tensor:
        x = (lips - self.cfg.mean) / self.cfg.std
        x = self.encoder(self.proj_encoder(self.frontend(x, mask)), mask)
        return x * mask[..., None].to(x.dtype)


def upstream_state_dict(model: AutoAVSRVisualEncoder, legacy: bool = False) -> dict[str, Tensor]:
    """The model's tensors under the E2E checkpoint's names (``legacy``: the 2023 release's)."""
    state = model.state_dict()
    if not legacy:
        return dict(state)
    out = {}
    for key, value in state.items():
        for old, new in LEGACY:
            if key.startswith(new):
                key = old + key[len(new):]
                break
        out[key] = value
    return out


def _encoder_tensors(blob: Any) -> dict[str, Tensor] | None:
    """The front-end/encoder tensors of a checkpoint under our names, or None if it holds none.
    Accepts the flat zoo file, either layout, and a Lightning checkpoint (``state_dict`` of
    ``model.*``) as upstream's training writes before averaging."""
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        blob = blob["state_dict"]
    if not isinstance(blob, dict) or not all(isinstance(k, str) for k in blob):
        return None
    if blob and all(k.startswith("model.") for k in blob):
        blob = {k[len("model."):]: v for k, v in blob.items()}
    found = {}
    for key, value in blob.items():
        for old, new in LEGACY:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        if key.startswith(PARTS) and isinstance(value, Tensor):
            found[key] = value
    return found or None


def load_auto_avsr(path: str | Path, cfg: AutoAVSRConfig | None = None) -> AutoAVSRVisualEncoder:
    """An auto_avsr VSR checkpoint → the encoder built for ``cfg`` (the catalogue entry's), in
    eval mode. A file that is not one, or not of that architecture, is an ArtifactError naming
    it, in one line."""
    path = Path(path)
    refuse = "not an auto_avsr VSR checkpoint (a state dict with frontend.*, proj_encoder.*, encoder.*)"
    blob = read_weights(path, refuse)
    state = _encoder_tensors(blob)
    if state is None:
        raise ArtifactError(path, refuse)
    net = AutoAVSRVisualEncoder(cfg)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing:
        raise ArtifactError(path, f"{refuse}: {missing[0]} missing")
    if bad:
        raise ArtifactError(path, f"{bad[0]} has shape {tuple(state[bad[0]].shape)}, the configured architecture "
                                  f"{tuple(own[bad[0]].shape)} (adim {net.cfg.adim}, {net.cfg.elayers} blocks)")
    if extra:
        raise ArtifactError(path, f"{extra[0]} is not in the configured architecture "
                                  f"(adim {net.cfg.adim}, {net.cfg.elayers} blocks)")
    net.load_state_dict(state)
    return net.eval()
