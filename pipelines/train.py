"""`imagintalk train STAGE`: one Ray Train job per model stage, registered in MLflow.

One function per stage (``train_vocoder``, ``train_unit_bert``, ``train_lip_aligner``,
``train_error_detector``, ``train_style_dit``), all thin over
:func:`imagintalk.train.runner.train_and_register`, and :func:`train_stage` that dispatches by name
(the CLI, DVC and Dagster call it). What each stage builds on, and so the order, is declared once
in :mod:`imagintalk.train.graph`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from imagintalk.config import Params, load_params
from imagintalk.errors import ConfigError
from imagintalk.models.config import ModelConfig
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.settings import given_setting
from imagintalk.train.graph import ORDER, skip_reason
from imagintalk.train.runner import train_and_register

# Metrics shown in the summary line, by preference.
_SUMMARY_METRICS = ("loss", "val_loss")


@dataclass(frozen=True)
class TrainSummary:
    stage: str
    version: RegisteredVersion | None   # None: skipped
    wall_s: float
    skipped: str | None = None          # why the stage was not trained (imagintalk.train.graph.skip_reason)

    def summary_line(self) -> str:
        if self.version is None:
            return f"skipped {self.stage}: {self.skipped}"
        m = self.version.metrics
        shown = ", ".join(f"{k} {m[k]:.4g}" for k in _SUMMARY_METRICS if k in m)
        steps = int(m.get("train_steps", 0))
        return (f"trained {self.stage}: {self.version.uri} ({steps} steps{', ' + shown if shown else ''}); "
                f"data {self.version.data_version[:12]}; {self.wall_s:.0f} s")


def _train(stage: str, shards: str, config: str | ModelConfig, storage: str | None,
           params: Params | None) -> RegisteredVersion:
    return train_and_register(stage, str(shards), config, storage, params or load_params())


def train_expression(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                     params: Params | None = None) -> RegisteredVersion:
    """Facial-expression model (per-frame face landmarks → emotion probabilities) on the corpus labels."""
    return _train("expression", shards, config, storage, params)


def train_vocoder(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                  params: Params | None = None) -> RegisteredVersion:
    """Neural vocoder (log-mel → 16 kHz wave) on the shards' audio."""
    return _train("vocoder", shards, config, storage, params)


def train_unit_bert(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                    params: Params | None = None) -> RegisteredVersion:
    """Masked LM over audio-derived units."""
    return _train("unit_bert", shards, config, storage, params)


def train_lip_aligner(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                      params: Params | None = None) -> RegisteredVersion:
    """Mouth crops → units at 50 Hz."""
    return _train("lip_aligner", shards, config, storage, params)


def train_error_detector(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                         params: Params | None = None) -> RegisteredVersion:
    """Error detector + lip-conditioned BERT on the registered aligner and unit BERT
    (``train.pins`` selects versions; default: newest of the same size and data)."""
    return _train("error_detector", shards, config, storage, params)


def train_style_dit(shards: str, config: str | ModelConfig = "tiny", storage: str | None = None,
                    params: Params | None = None) -> RegisteredVersion:
    """Face-style adapter + style-DiT on the registered refiner's c_lip and the registered expression
    model's per-frame emotion probabilities."""
    return _train("style_dit", shards, config, storage, params)


TRAINERS = {"expression": train_expression, "vocoder": train_vocoder, "unit_bert": train_unit_bert,
            "lip_aligner": train_lip_aligner, "error_detector": train_error_detector, "style_dit": train_style_dit}
assert tuple(TRAINERS) == ORDER


def write_version_file(version: RegisteredVersion, out: str | Path) -> Path:
    """The registered version as JSON (DVC's output of a training stage; read by register)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": version.name, "version": version.version, "uri": version.uri, "run_id": version.run_id,
            "data_version": version.data_version, "metrics": version.metrics}
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def write_skip_file(stage: str, reason: str, out: str | Path) -> Path:
    """The record of a stage params do not train (DVC's output of its step; register reads it)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": stage, "skipped": reason}, indent=1, sort_keys=True) + "\n")
    return path


def train_stage(stage: str, shards: str, config: str | ModelConfig = "tiny", params: Params | None = None,
                storage: str | None = None, out: str | Path | None = None) -> TrainSummary:
    """Train and register one stage by name; the CLI's ``imagintalk train STAGE``. With ``out``,
    also write the registered version as JSON there (the pipeline's record of this stage). A stage
    params make unnecessary (the vocoder beside a pretrained codec) is not trained: its record says
    why, so the pipeline's one static graph runs under either codec."""
    fn = TRAINERS.get(stage)
    if fn is None:
        raise ConfigError(stage, f"unknown training stage (choose from {', '.join(ORDER)})")
    params = params or load_params()
    reason = skip_reason(stage, params)
    if reason is not None:
        if out is not None:
            write_skip_file(stage, reason, out)
        return TrainSummary(stage=stage, version=None, wall_s=0.0, skipped=reason)
    started = time.time()
    # an explicit root, else the deployment's (IMAGINTALK_STORAGE_ROOT), else params.storage.root
    version = fn(shards, config, storage or given_setting("storage_root") or params.storage.root, params)
    if out is not None:
        write_version_file(version, out)
    return TrainSummary(stage=stage, version=version, wall_s=time.time() - started)
