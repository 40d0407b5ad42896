"""The training stage family: which registered stages each builds on and what data it reads.

The modules themselves come from :func:`imagintalk.models.stages.build_stage` (each with
``loss(batch) -> (loss, metrics)``); this table adds what the training room decides:

- ``needs`` maps the part name ``build_stage`` expects to the registered stage that supplies it:
  the error detector starts from the trained lip aligner (frozen) and unit BERT; the style-DiT
  uses the trained refiner (``imagintalk-error_detector``: aligner + BERT + detector), frozen.
- c_lip for the style-DiT: by default computed from the *refined* units of the registered
  refiner, i.e. exactly what inference feeds the DiT (no train/test mismatch); setting the model
  config's ``style_dit.c_lip_source`` to ``ground_truth`` trains on teacher-forced c_lip over the
  ground-truth units instead (useful while the aligner is still weak).
- the vocoder reads ``audio.flac`` (the other stages skip the largest tar member).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from imagintalk.config import LoaderConfig, Params
from imagintalk.errors import ConfigError
from imagintalk.models.config import ModelConfig
from imagintalk.models.stages import build_stage as build_model_stage

ORDER = ("vocoder", "unit_bert", "lip_aligner", "error_detector", "style_dit")


@dataclass(frozen=True)
class StageSpec:
    name: str
    needs: Mapping[str, str] = field(default_factory=dict)   # build_stage part -> registered stage
    audio: bool = False                                       # decode audio.flac

    def loader_config(self, params: Params, train: bool = True) -> LoaderConfig:
        """The loader settings of this stage (batch size override, audio on demand)."""
        update: dict = {"audio": self.audio}
        if params.train.batch_size is not None:
            update["batch_size"] = params.train.batch_size
        if not train:
            update["drop_last"] = False
        return params.loader.model_copy(update=update)


STAGES: dict[str, StageSpec] = {
    "vocoder": StageSpec("vocoder", audio=True),
    "unit_bert": StageSpec("unit_bert"),
    "lip_aligner": StageSpec("lip_aligner"),
    "error_detector": StageSpec("error_detector", needs={"lip_aligner": "lip_aligner", "unit_bert": "unit_bert"}),
    "style_dit": StageSpec("style_dit", needs={"refiner": "error_detector"}),
}


def build_stage(stage: str, cfg: ModelConfig, deps: Mapping[str, nn.Module]) -> nn.Module:
    """A fresh trainable stage on top of the registered modules it needs (keyed by registered
    stage name, as the driver resolves them)."""
    spec = STAGES[stage]
    missing = [s for s in spec.needs.values() if s not in deps]
    if missing:
        raise ConfigError(stage, f"needs trained stage(s) {', '.join(missing)}")
    parts = {part: deps[registered] for part, registered in spec.needs.items()}
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
    except ConfigError:
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
