"""Weights for the pretrained-component tests, made here rather than downloaded: tiny
architectures in their upstream file layouts, and catalogue entries that copy a built-in one.

Not a test module (no ``test_`` prefix); imported by the tests of the catalogue's components
(tests/test_eval_asr.py, test_visual_encoder.py, test_judges_by_name.py, test_lrs3_recipe.py, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# A tiny wav2vec 2.0 / HuBERT architecture (torchaudio's ``wav2vec2_model`` keyword arguments; a few
# hundred KB of random weights)
TINY_WAV2VEC2 = dict(
    extractor_mode="group_norm", extractor_conv_layer_config=[[16, 10, 5]] + [[16, 3, 2]] * 4 + [[16, 2, 2]] * 2,
    extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
    encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=2, encoder_attention_dropout=0.0,
    encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
    encoder_layer_norm_first=False, encoder_layer_drop=0.0,
)
# auto_avsr's VSR architecture at narrow widths (imagintalk/models/auto_avsr.py AutoAVSRConfig)
TINY_AUTO_AVSR = {"adim": 32, "aheads": 4, "eunits": 64, "elayers": 2, "cnn_module_kernel": 5,
                  "stem_channels": 8, "trunk_widths": [8, 16, 32, 64]}


def save_auto_avsr_zoo_file(model, path: Path, legacy: bool = False) -> Path:
    """An AutoAVSRVisualEncoder saved as auto_avsr's model-zoo file: the whole E2E model's flat state
    dict (the text heads, which the loader ignores, included; ``legacy``: the 2023 release's names)."""
    from imagintalk.models.auto_avsr import upstream_state_dict

    heads = {"decoder.embed.0.weight": torch.zeros(11, 32), "decoder.output_layer.bias": torch.zeros(11),
             "ctc.ctc_lo.weight": torch.zeros(11, 32)}
    torch.save({**upstream_state_dict(model, legacy=legacy), **heads}, path)
    return path


def mirror_entry(of: str) -> dict[str, Any]:
    """The built-in catalogue entry ``of`` as a ``pretrained.components`` entry, to add under another
    name: the same kind, architecture, hash and bundled file (the component is the same weights)."""
    from imagintalk.pretrained.catalog import BUILTIN

    fields = BUILTIN[of].model_dump(exclude={"name", "filename"}, exclude_none=True)
    return {k: v for k, v in fields.items() if v != {}}
