"""The training stage family: builds each stage on the registered modules it needs, and scores it.

The graph (which registered stages each builds on, what data it reads) is declared once in
:mod:`imagintalk.train.graph`. The modules themselves come from
:func:`imagintalk.models.stages.build_stage` (each with ``loss(batch) -> (loss, metrics)``).

- c_lip for the style-DiT: by default computed from the *refined* units of the registered
  refiner, i.e. exactly what inference feeds the DiT (no train/test mismatch); setting the model
  config's ``style_dit.c_lip_source`` to ``ground_truth`` trains on teacher-forced c_lip over the
  ground-truth units instead (useful while the aligner is still weak).
- the vocoder reads ``audio.flac`` (the other stages skip the largest tar member).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from imagintalk.config import LoaderConfig, Params
from imagintalk.conventions import EMOTIONS
from imagintalk.errors import ArtifactError, DataError
from imagintalk.models.config import ModelConfig
from imagintalk.models.stages import build_stage as build_model_stage
from imagintalk.train.graph import ORDER, STAGES, StageSpec, upstream

__all__ = ["ORDER", "STAGES", "StageSpec", "build_stage", "score_split", "upstream"]



def build_stage(stage: str, cfg: ModelConfig, deps: Mapping[str, nn.Module]) -> nn.Module:
    """A fresh trainable stage on top of the registered modules it needs (keyed by registered
    stage name, as the driver resolves them; ``codec`` for a stage whose spec asks for it)."""
    spec = STAGES[stage]
    missing = [s for s in spec.needs.values() if s not in deps]
    if spec.codec and "codec" not in deps:
        missing.append("codec")
    if missing:
        raise ArtifactError(stage, f"needs trained stage(s) {', '.join(missing)}")
    parts = {part: deps[registered] for part, registered in spec.needs.items()}
    for part in parts.values():  # an expression model must speak the shards' emotion vocabulary
        if hasattr(part, "check_vocabulary"):
            part.check_vocabulary(EMOTIONS, f"shards' emotion vocabulary ({stage} stage)")
    if spec.codec:
        parts["codec"] = deps["codec"]
    return build_model_stage(stage, cfg, parts)


@torch.no_grad()
def score_split(module: nn.Module, shards: str, split: str, loader_cfg: LoaderConfig, params: Params,
                seed: int | None = None) -> dict[str, float]:
    """Mean of the stage's loss metrics over up to ``train.val_batches`` batches of ``split``.

    The stochastic parts of a loss (masking, diffusion steps) run under a fixed seed, so two
    identical models score identically. A shard root without that split scores nothing ({}).
    """
    from imagintalk.data.loader import make_loader

    try:
        loader = make_loader(shards, split, False, loader_cfg, storage_cfg=params.storage)
    except DataError:
        return {}
    was_training = module.training
    module.eval()
    totals: dict[str, float] = {}
    n = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.train.seed if seed is None else seed)
        for batch in loader:
            if n >= params.train.val_batches:
                break
            _, metrics = module.loss(batch)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            n += 1
    module.train(was_training)
    return {k: v / n for k, v in totals.items()} if n else {}
