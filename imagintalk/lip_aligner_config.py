"""Typed configuration of the lip aligner's visual side (params.yaml ``lip_aligner``): its
pretrained encoder and the augmentation of its training crops.
Kept apart from imagintalk/config.py, which re-exports it.

Why a params section and not a model preset field: which pretrained encoder a deployment uses
(and whether it is fine-tuned) is a choice per corpus and cluster, like ``codec.component``,
while the presets (tiny/base/paper) fix sizes. ``model_config`` copies it into the aligner's
config (imagintalk/models/config.py ``LipAlignerConfig``)."""

from __future__ import annotations

from pydantic import Field

from imagintalk.sections import Section


class LipAlignerParams(Section):
    """The aligner's visual encoder: its own front-end trained from scratch (None), or a pretrained
    component of kind ``visual_encoder`` by name (``auto-avsr-vsr-lrs3-base``), frozen or fine-tuned."""

    visual_encoder: str | None = None
    freeze_visual_encoder: bool = True
    # auto_avsr's video transform beyond the random crop, on the aligner's training batches only
    # (LoaderConfig.flip_prob / time_mask_frames; results/README.md "Lip aligner: auto_avsr's
    # augmentation"): off until a quality run confirms what validation speakers showed
    flip_prob: float = Field(0.0, ge=0.0, le=1.0)
    time_mask_frames: int = Field(0, ge=0)
