"""Discrete lip aligner: mouth crops at 25 fps → logits over the K speech units at 50 Hz.

Visual front-end as auto_avsr (3D-conv stem + ResNet-18 trunk, module names kept so that an
auto_avsr/AV-HuBERT-style front-end checkpoint loads by name), a padding-masked Conformer or
Transformer over time, a learned 2× upsampling (each 25 Hz frame emits two 50 Hz tokens) and a
linear projector over the units. Trained with cross-entropy on the audio-derived units.

Padding frames are zeroed before the only temporal convolution (the 3D stem) and excluded from the
front-end's BatchNorm statistics (only valid frames go through the per-frame trunk), so a padded
clip gives its valid positions exactly what it gives alone.

A pretrained visual encoder (``lip_aligner.visual_encoder`` in params: auto_avsr's VSR front-end
+ Conformer, imagintalk/models/auto_avsr.py) replaces the front-end: its per-frame features
(adim wide, 25 Hz) are projected to the aligner's width and go through the same temporal encoder,
upsampling and projector. Its weights are resolved by name from the pretrained cache or the
storage root on whichever machine builds the aligner. Frozen (the default) it runs without
gradients in eval mode; fine-tuned, its weights learn with the aligner's, but its BatchNorms keep
their pretrained statistics in both cases: fine-tuning batches are a few clips per GPU, too few
for good statistics, and fixed statistics keep padded clips exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import Tensor, nn

from imagintalk.config import Params, load_params
from imagintalk.errors import ConfigError
from imagintalk.models.auto_avsr import (
    ARCHITECTURE,
    AutoAVSRConfig,
    AutoAVSRVisualEncoder,
    VisualFrontend,
    load_auto_avsr,
)
from imagintalk.models.batch import Batch, frame_mask, lips_float, safe_tokens, token_mask, upsample_mask
from imagintalk.models.config import LipAlignerConfig, ModelConfig
from imagintalk.models.layers import Encoder, check_nonempty, freeze, masked_mean, zero_padding

log = logging.getLogger(__name__)

__all__ = ["AlignerOutput", "LipAligner", "VisualFrontend", "build_visual_encoder", "load_pretrained_frontend",
           "visual_encoder_source"]
# what a model config records of a visual encoder's catalogue entry (enough to resolve and build it)
_SOURCE_FIELDS = ("kind", "url", "filename", "sha256", "architecture", "config", "licence")


def visual_encoder_source(name: str, params: Params) -> dict:
    """The catalogue entry ``name`` as the aligner's config records it. ConfigError when it is not a
    visual encoder with an in-tree architecture, its config does not build one, or the loader's
    crop is not the input size it was trained on."""
    from imagintalk.pretrained import catalogue

    where = "lip_aligner.visual_encoder"
    known = catalogue(params)
    usable = ", ".join(n for n, c in known.items()
                       if c.kind == "visual_encoder" and c.architecture.startswith(ARCHITECTURE))
    comp = known.get(name)
    if comp is None or comp.kind != "visual_encoder":
        what = "not a pretrained component" if comp is None else f"a {comp.kind}"
        raise ConfigError(where, f"{name} is {what}, not a visual encoder (visual encoders: {usable or 'none'})")
    if not comp.architecture.startswith(ARCHITECTURE):
        raise ConfigError(where, f"{name} is a {comp.architecture}, which has no in-tree implementation "
                                 f"(usable: {usable or 'none'})")
    try:
        arch = AutoAVSRConfig(**comp.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "".join(f".{p}" for p in first["loc"])
        raise ConfigError(f"pretrained.components.{name}.config{field}", first["msg"]) from None
    if params.loader.crop != arch.input_size:
        raise ConfigError("loader.crop", f"{params.loader.crop}, but {name} was trained on "
                                         f"{arch.input_size}×{arch.input_size} mouth crops")
    return {k: getattr(comp, k) for k in _SOURCE_FIELDS}


def build_visual_encoder(a: LipAlignerConfig) -> AutoAVSRVisualEncoder:
    """The aligner's pretrained visual encoder: resolved by name (this machine's cache, else the
    storage root) and loaded, or only built when ``a.load_pretrained`` is off."""
    from imagintalk.pretrained import catalogue, resolve, with_component

    name, source = a.visual_encoder, a.visual_encoder_source
    params = load_params() if source is None or a.load_pretrained else None
    if source is None:  # a config made by hand: this machine's catalogue must know it
        source = visual_encoder_source(name, params)
    arch = AutoAVSRConfig(**source["config"])
    if not a.load_pretrained:
        return AutoAVSRVisualEncoder(arch)
    params = with_component(params, name, source)
    if catalogue(params)[name].architecture != source["architecture"]:
        raise ConfigError(name, f"this machine's catalogue entry is not the {source['architecture']} the model "
                                "was configured with")
    path = resolve(name, params=params)
    log.info("visual encoder %s from %s (%s)", name, path, "frozen" if a.freeze_visual_encoder else "fine-tuned")
    return load_auto_avsr(path, arch)


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
        self.frontend: VisualFrontend | None = None
        self.visual_encoder: AutoAVSRVisualEncoder | None = None
        if a.visual_encoder is not None:
            self.visual_encoder = build_visual_encoder(a)
            self.visual_frozen = a.freeze_visual_encoder
            if self.visual_frozen:
                freeze(self.visual_encoder)
            visual_dim = self.visual_encoder.out_dim
        else:
            self.frontend = VisualFrontend(a)
            self.frontend_frozen = a.pretrained_frontend is not None
            if self.frontend_frozen and a.load_pretrained:
                load_pretrained_frontend(self.frontend, a.pretrained_frontend)
            visual_dim = self.frontend.out_dim
        d = a.encoder.dim
        self.proj_in = nn.Linear(visual_dim, d)
        self.encoder = Encoder(a.encoder)
        self.upsample = nn.Linear(d, self.up * d)
        self.norm = nn.LayerNorm(d)
        self.projector = nn.Linear(d, v.num_units)
        self.feature_dim = d

    def train(self, mode: bool = True) -> LipAligner:
        super().train(mode)
        if self.visual_encoder is not None:
            if self.visual_frozen:  # no dropout, pretrained statistics
                self.visual_encoder.eval()
            else:                   # dropout as upstream fine-tunes, BatchNorm statistics kept (module doc)
                for m in self.visual_encoder.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        elif self.frontend_frozen:  # a frozen pretrained front-end keeps its BatchNorm statistics
            self.frontend.eval()
        return self

    def visual_features(self, lips: Tensor, lip_mask: Tensor) -> Tensor:
        """B×T×H×W crops (uint8, or float in [0, 1]) → B×T×D per-frame features, zeros at padding."""
        lips = lips_float(lips)
        if self.visual_encoder is None:
            return self.frontend(lips, lip_mask)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.visual_frozen):
            return self.visual_encoder(lips, lip_mask)

    def forward(self, lips: Tensor, lip_mask: Tensor) -> AlignerOutput:
        lip_mask = lip_mask.bool()
        check_nonempty(lip_mask, "lip aligner")
        x = self.proj_in(self.visual_features(lips, lip_mask))
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
