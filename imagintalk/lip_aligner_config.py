"""Typed configuration of the lip aligner's pretrained visual side (params.yaml ``lip_aligner``).
Kept apart from imagintalk/config.py, which re-exports it.

Why a params section and not a model preset field: which pretrained encoder a deployment uses
(and whether it is fine-tuned) is a choice per corpus and cluster, like ``codec.component``,
while the presets (tiny/base/paper) fix sizes. ``model_config`` copies it into the aligner's
config (imagintalk/models/config.py ``LipAlignerConfig``)."""

from __future__ import annotations

from imagintalk.sections import Section


class LipAlignerParams(Section):
    """The aligner's visual encoder: its own front-end trained from scratch (None), or a pretrained
    component of kind ``visual_encoder`` by name (``auto-avsr-vsr-lrs3-base``), frozen or fine-tuned."""

    visual_encoder: str | None = None
    freeze_visual_encoder: bool = True
