"""What a training job is before it runs: its plan and its resume identity.

:func:`plan_job` reads the data version from the shard index, resolves the registered stages the
job builds on, and names the Ray run ``{stage}-{data_version[:12]}-{config}`` under
``{storage}/train``: the same name resumes from that run's latest checkpoint. :func:`params_hash`
is the job's trajectory (what a checkpoint must have been written under to be resumed), and
:func:`check_resumable` refuses a checkpoint written under other params.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mlflow import MlflowClient

from imagintalk import storage
from imagintalk.config import Params
from imagintalk.errors import ConfigError
from imagintalk.registry import tracking
from imagintalk.registry.stage_models import find_dependency
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.train.checkpoint import STATE_FILE
from imagintalk.train.stages import StageSpec

# TrainConfig fields that do not change the trajectory: left out of the resume hash.
_NOT_HASHED = {"max_steps", "stage_steps", "fail_at_step", "max_failures", "log_every",
               "checkpoints_to_keep", "ray_num_cpus", "cpus_per_worker", "val_batches", "run_suffix"}


@dataclass(frozen=True)
class JobPlan:
    stage: str
    preset: str
    shards: str
    storage_path: str           # Ray Train storage_path ({storage}/train)
    name: str                   # Ray run name
    max_steps: int
    data: tracking.DataVersion
    params_hash: str
    depends_on: dict[str, RegisteredVersion]

    @property
    def run_dir(self) -> str:
        return storage.join(self.storage_path, self.name)


def params_hash(stage: str, model_cfg: dict, params: Params, loader: dict,
                deps: dict[str, RegisteredVersion]) -> str:
    train = {k: v for k, v in params.train.model_dump(mode="json").items() if k not in _NOT_HASHED}
    payload = {"stage": stage, "model": model_cfg, "train": train, "loader": loader,
               "deps": {k: v.uri for k, v in sorted(deps.items())}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def plan_job(c: MlflowClient, spec: StageSpec, shards: str, preset: str, model_cfg: dict, storage_root: str,
             params: Params) -> JobPlan:
    data = tracking.read_data_version(shards, params.storage)
    deps = {}
    for need in spec.needs.values():
        mv = find_dependency(c, need, preset, data.content_hash, params.train.pins.get(need))
        deps[need] = RegisteredVersion.from_mlflow(mv)
    loader = spec.loader_config(params, train_speakers=data.speakers.get("train")).model_dump(mode="json")
    name = f"{spec.name}-{data.content_hash[:12]}-{preset}{params.train.run_suffix}"
    return JobPlan(stage=spec.name, preset=preset, shards=shards,
                   storage_path=storage.join(storage.absolute(storage_root), "train"), name=name,
                   max_steps=params.train.stage_steps.get(spec.name, params.train.max_steps), data=data,
                   params_hash=params_hash(spec.name, model_cfg, params, loader, deps), depends_on=deps)


def check_resumable(plan: JobPlan, params: Params) -> int:
    """The step of the latest checkpoint this run would resume from (0: a fresh run). Refuses a
    checkpoint written under other training params, which would silently mix two runs."""
    latest = 0
    for path in storage.glob(storage.join(plan.run_dir, "checkpoint_*", STATE_FILE), params.storage):
        state = json.loads(storage.read_text(path, params.storage))
        if state.get("params_hash") and state["params_hash"] != plan.params_hash:
            raise ConfigError(path, "checkpoint was written under different training params; set "
                                    "train.run_suffix (or remove the run directory) to start a fresh run")
        latest = max(latest, int(state.get("step", 0)))
    return latest
