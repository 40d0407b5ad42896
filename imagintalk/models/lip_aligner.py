"""Discrete lip aligner: mouth crops at 25 fps → logits over the K speech units at 50 Hz.

Visual front-end as auto_avsr (3D-conv stem + ResNet-18 trunk, module names kept so that an
auto_avsr/AV-HuBERT-style front-end checkpoint loads by name), a padding-masked Conformer or
Transformer over time, a learned 2× upsampling (each 25 Hz frame emits two 50 Hz tokens) and a
linear projector over the units. Trained with cross-entropy on the audio-derived units.

Padding frames are zeroed before the only temporal convolution (the 3D stem) and excluded from the
front-end's BatchNorm statistics (only valid frames go through the per-frame trunk), so a padded
clip gives its valid positions exactly what it gives alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.errors import ConfigError
from imagintalk.models.batch import Batch, frame_mask, lips_float, safe_tokens, token_mask, upsample_mask
from imagintalk.models.config import LipAlignerConfig, ModelConfig
from imagintalk.models.layers import Encoder, check_nonempty, freeze, masked_mean, zero_padding

log = logging.getLogger(__name__)


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
    """3D-conv stem + ResNet trunk: lips B×T×H×W (+ mask) → B×T×D, zeros at padded frames."""

    def __init__(self, cfg: LipAlignerConfig):
        super().__init__()
        c = cfg.stem_channels
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, c, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False), nn.BatchNorm3d(c), nn.SiLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.trunk = ResNetTrunk(c, cfg.trunk_widths, cfg.trunk_blocks)
        self.out_dim = cfg.trunk_widths[-1]

    def forward(self, lips: Tensor, mask: Tensor) -> Tensor:
        b, t = mask.shape
        x = (lips * mask[..., None, None].to(lips.dtype)).unsqueeze(1)       # B×1×T×H×W
        x = self.frontend3D[0](x).transpose(1, 2)[mask]                      # valid frames: N×C×H'×W'
        x = self.frontend3D[1:](x.unsqueeze(2)).squeeze(2)                   # BN3d over valid frames only
        feats = self.trunk(x)
        out = feats.new_zeros(b, t, feats.shape[-1])
        out[mask] = feats
        return out


def load_pretrained_frontend(frontend: VisualFrontend, path: str | Path) -> None:
    """Load a local front-end checkpoint by name and freeze it.

    Accepts a state dict, or a dict holding one under ``state_dict``/``model``; keys may carry any
    prefix before ``frontend3D.``/``trunk.`` (auto_avsr full-model checkpoints say
    ``encoder.frontend.trunk...``). Every front-end tensor must be found with its shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "pretrained visual front-end checkpoint not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means a bad checkpoint
        raise ConfigError(path, f"not a readable torch checkpoint ({exc.__class__.__name__})") from exc
    for key in ("state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict):
        raise ConfigError(path, "checkpoint holds no state dict")
    found: dict[str, Tensor] = {}
    for key, value in blob.items():
        for anchor in ("frontend3D.", "trunk."):
            if anchor in key:
                found[key[key.index(anchor):]] = value
                break
    own = frontend.state_dict()
    missing = [k for k in own if k not in found]
    if missing:
        raise ConfigError(path, f"front-end tensors missing from checkpoint, e.g. {missing[0]}")
    bad = [k for k in own if tuple(found[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ConfigError(path, f"shape mismatch for {bad[0]}: {tuple(found[bad[0]].shape)} vs "
                                f"{tuple(own[bad[0]].shape)} (front-end widths differ from the config)")
    frontend.load_state_dict({k: found[k] for k in own})
    freeze(frontend)
    log.info("loaded frozen visual front-end from %s", path)


@dataclass
class AlignerOutput:
    logits: Tensor    # B×2T×K
    features: Tensor  # B×2T×C (50 Hz, zeros at padding)
    mask: Tensor      # B×2T


class LipAligner(nn.Module):
    """Mouth crops → unit logits at 50 Hz. ``loss(batch)`` is masked cross-entropy on ``units``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        a, v = cfg.lip_aligner, cfg.vocab
        self.cfg, self.up = cfg, v.units_per_frame
        self.frontend = VisualFrontend(a)
        self.frontend_frozen = a.pretrained_frontend is not None
        if self.frontend_frozen:
            load_pretrained_frontend(self.frontend, a.pretrained_frontend)
        d = a.encoder.dim
        self.proj_in = nn.Linear(self.frontend.out_dim, d)
        self.encoder = Encoder(a.encoder)
        self.upsample = nn.Linear(d, self.up * d)
        self.norm = nn.LayerNorm(d)
        self.projector = nn.Linear(d, v.num_units)
        self.feature_dim = d

    def train(self, mode: bool = True) -> LipAligner:
        super().train(mode)
        if self.frontend_frozen:  # a frozen pretrained front-end keeps its BatchNorm statistics
            self.frontend.eval()
        return self

    def forward(self, lips: Tensor, lip_mask: Tensor) -> AlignerOutput:
        lip_mask = lip_mask.bool()
        check_nonempty(lip_mask, "lip aligner")
        x = self.proj_in(self.frontend(lips_float(lips), lip_mask))
        x = self.encoder(x, lip_mask)
        b, t, d = x.shape
        mask = upsample_mask(lip_mask, self.up)
        x = zero_padding(self.norm(self.upsample(x).view(b, t * self.up, d)), mask)
        return AlignerOutput(logits=self.projector(x), features=x, mask=mask)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        out = self(batch["lips"], frame_mask(batch))
        mask = out.mask & token_mask(batch)[:, : out.mask.shape[1]]
        target = safe_tokens(batch["units"][:, : mask.shape[1]], mask)
        ce = F.cross_entropy(out.logits.transpose(1, 2), target, reduction="none",
                             label_smoothing=self.cfg.lip_aligner.label_smoothing)
        loss = masked_mean(ce, mask)
        acc = masked_mean((out.logits.argmax(-1) == target).float(), mask)
        return loss, {"loss": float(loss.detach()), "unit_acc": float(acc)}
