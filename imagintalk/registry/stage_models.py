"""Registering trained stage modules as ``imagintalk-<stage>`` and loading them back.

Format: ``mlflow.pytorch.log_model(..., serialization_format="pickle")`` — the whole module,
loadable with ``mlflow.pytorch.load_model`` as long as ``imagintalk`` is importable (it is in
every process that trains, evaluates or serves). The pt2 export would need a traced example of
each stage's dynamic-length inputs, and a stage's ``loss``/``refine``/``sample`` methods are not
part of an exported graph. Requirements are given explicitly, because letting MLflow infer them
imports the model in a subprocess (tens of seconds per version).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.pytorch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from torch import nn

from imagintalk.registry import tracking
from imagintalk.registry.model_card import ModelCard
from imagintalk.registry.tracking import DataVersion
from imagintalk.registry.versions import LATEST, RegistryError, all_versions, resolve_version

MODEL_PREFIX = "imagintalk-"
CARD_FILE = "README.md"
PRESET_TAG = "model.preset"
# The full model config of a stage run (the composite rebuilds ImaginTalk from it).
MODEL_CONFIG_ARTIFACT = "model_config.json"


def model_name(stage: str) -> str:
    return f"{MODEL_PREFIX}{stage}"


def pip_requirements() -> list[str]:
    """The pinned stack a loaded stage needs (the package itself plus torch)."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", "imagintalk"]


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's per-log warnings that are known and decided here (pickle format chosen on
    purpose; no ``pip`` in a uv-made venv) so a CLI run ends with its summary, not with noise."""
    loggers = [logging.getLogger(n) for n in ("mlflow.pytorch", "mlflow.pyfunc", "mlflow.utils.environment")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def register_stage_model(c: MlflowClient, run_id: str, stage: str, module: nn.Module, card: ModelCard,
                         tags: Mapping[str, str]) -> ModelVersion:
    """Log ``module`` to ``run_id``, register it as ``imagintalk-<stage>``, attach the card."""
    name = model_name(stage)
    module = module.cpu().eval()
    with mlflow.start_run(run_id=run_id), quiet_mlflow():
        info = mlflow.pytorch.log_model(module, name="model", serialization_format="pickle",
                                        pip_requirements=pip_requirements(), registered_model_name=name,
                                        await_registration_for=0)
        text = card.render()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / CARD_FILE
            path.write_text(text)
            mlflow.log_artifact(str(path), artifact_path="model_card")
    version = str(info.registered_model_version)
    c.update_model_version(name, version, description=text)
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, str(value))
    return c.get_model_version(name, version)


def register_stage_version(c: MlflowClient, run_id: str, stage: str, module: nn.Module, preset: str,
                           data: DataVersion, metrics: Mapping[str, float], training: Mapping[str, str],
                           depends_on: Mapping[str, str], extra_tags: Mapping[str, str] | None = None
                           ) -> ModelVersion:
    """Register a trained stage with the tags and card every stage version carries: stage, size,
    data version (+ tokenizer/codec versions), git commit, the versions it was built on."""
    git = tracking.git_info()
    card = ModelCard(name=model_name(stage), stage=stage, preset=preset, data_version=data.content_hash,
                     shards=data.shards, metrics=dict(metrics), training=dict(training),
                     provenance={**{k: v for k, v in data.tags().items() if k != "data.shards"}, **git},
                     depends_on=dict(depends_on))
    tags = {"model.stage": stage, PRESET_TAG: preset, "train.steps": training.get("steps", ""),
            **data.tags(), **git, **{f"depends.{k}": v for k, v in depends_on.items()}, **dict(extra_tags or {})}
    return register_stage_model(c, run_id, stage, module, card, tags)


def load_stage_model(uri: str) -> nn.Module:
    """A registered stage module (``models:/imagintalk-<stage>/<v>``) on CPU, in eval mode."""
    return mlflow.pytorch.load_model(uri, map_location="cpu").eval()


def find_dependency(c: MlflowClient, stage: str, preset: str, data_version: str,
                    pin: str | None = None) -> ModelVersion:
    """The version of ``stage`` a dependent stage builds on.

    An explicit pin (number or ``@alias``) wins, but must be of the same model size. Otherwise
    the newest version of the same size trained on the same data version, else the newest of
    the same size on any data (with a tag on the dependent run saying so).
    """
    name = model_name(stage)
    if pin not in (None, "", LATEST):
        mv = resolve_version(c, name, pin)
        if (mv.tags or {}).get(PRESET_TAG) != preset:
            raise RegistryError(f"models:/{name}/{mv.version}",
                                f"model size {(mv.tags or {}).get(PRESET_TAG)!r}, needed {preset!r}")
        return mv
    same_size = [mv for mv in all_versions(c, name) if (mv.tags or {}).get(PRESET_TAG) == preset]
    if not same_size:
        raise RegistryError(f"models:/{name}", f"no registered {preset!r} version: train stage {stage} first")
    same_data = [mv for mv in same_size if (mv.tags or {}).get("data.version") == data_version]
    return (same_data or same_size)[-1]
