"""The driver side of a stage's training job: plan, launch on Ray Train, score, register.

``train_and_register(stage, shards, config, storage, params)``:

1. reads the data version from the shard index and resolves the registered stages this one
   builds on (:data:`imagintalk.train.stages.STAGES`);
2. names the Ray run ``{stage}-{data_version[:12]}-{config}`` under ``{storage}/train`` — the
   same name resumes from that run's latest checkpoint, so a killed job is simply rerun;
3. opens (or, for a resumed job, reopens) the MLflow run: params, provenance tags;
4. runs the shared ``train_loop_per_worker`` in a ``TorchTrainer`` (local Ray on demand,
   ``RAY_ADDRESS`` for a cluster);
5. loads the final checkpoint, scores the val split, registers ``imagintalk-<stage>`` with its
   model card.

A rerun of a job whose MLflow run already finished and registered returns that version without
training again (same data, same params: nothing to do).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from ray.train import Checkpoint
from torch import nn

from imagintalk import storage
from imagintalk.config import Params, TrainConfig
from imagintalk.errors import ConfigError, ImaginTalkError
from imagintalk.ray_session import start_ray
from imagintalk.registry import tracking
from imagintalk.registry.stage_models import (
    MODEL_CONFIG_ARTIFACT,
    PRESET_TAG,
    find_dependency,
    load_stage_model,
    model_name,
    register_stage_version,
)
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.settings import get_settings
from imagintalk.train.checkpoint import STATE_FILE, load_model_state, read_state
from imagintalk.train.loop import LoopConfig, train_loop_per_worker
from imagintalk.train.stages import STAGES, StageSpec, build_stage, score_split

log = logging.getLogger(__name__)

RUN_TAG = "train.ray_run"
STORAGE_TAG = "train.storage"
HASH_TAG = "train.params_hash"
VERSION_TAG = "registered.version"
PROGRESS_POLL_S = 2.0
# TrainConfig fields that do not change the trajectory: left out of the resume hash.
_NOT_HASHED = {"max_steps", "stage_steps", "fail_at_step", "max_failures", "log_every",
               "checkpoints_to_keep", "ray_num_cpus", "cpus_per_worker", "val_batches", "run_suffix"}
# Driver environment a worker needs to reach the same storage and tracking server.
_PROPAGATED_ENV = ("MLFLOW_TRACKING_URI", "FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                   "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                   "IMAGINTALK_STORAGE_ROOT", "IMAGINTALK_PARAMS")


class TrainingError(ImaginTalkError):
    """A training job failed; its checkpoints stay, and rerunning resumes from the latest."""

    kind = "train"


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


def _abs(path: str) -> str:
    return path if storage.is_remote(path) else str(Path(path).resolve())


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
                   storage_path=storage.join(_abs(storage_root), "train"), name=name,
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


def ensure_ray(params: Params) -> None:
    """Connect to ``RAY_ADDRESS`` or start a local Ray sized for the job (once per process)."""
    t = params.train
    needed = t.num_workers * t.cpus_per_worker
    # Locally, worker logs stay in Ray's session logs: without the dashboard (not installed) Ray
    # Train's placement-group cleaner floods the driver with state-API warnings. Progress comes
    # from the MLflow metrics instead (:class:`_Progress`), failures from the raised error.
    start_ray(num_cpus=max(t.ray_num_cpus or os.cpu_count() or 1, needed),
              log_to_driver=bool(get_settings().ray_address))


@dataclass(frozen=True)
class WorkerLayout:
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float


def worker_layout(t: TrainConfig, cluster: Mapping[str, float], cuda: bool, remote: bool) -> WorkerLayout:
    """The worker group that fits where it runs.

    A cluster (``RAY_ADDRESS``) schedules or autoscales the requested group, on GPUs when it has
    any. A local Ray gets one DDP rank per GPU (NCCL refuses two ranks on one device), and on CPU
    shrinks each worker's CPU share when Ray was started smaller (e.g. by the shard step), rather
    than waiting forever for resources that will not come.
    """
    if remote:
        gpu = cluster.get("GPU", 0.0) > 0 if t.use_gpu == "auto" else t.use_gpu == "true"
        return WorkerLayout(t.num_workers, gpu, float(t.cpus_per_worker))
    gpus = int(cluster.get("GPU", 0.0)) if cuda and t.use_gpu != "false" else 0
    n = min(t.num_workers, gpus) if gpus else t.num_workers
    cpus = float(cluster.get("CPU", 0.0))
    return WorkerLayout(n, gpus > 0, min(float(t.cpus_per_worker), cpus / n) if cpus else float(t.cpus_per_worker))


def storage_target(path: str, params: Params) -> tuple[str, Any]:
    """Ray Train's ``(storage_path, storage_filesystem)``: an S3 root with a custom endpoint (MinIO,
    moto) needs an explicit pyarrow filesystem; anything else Ray resolves from the URI."""
    opts = storage.storage_options(path, params.storage)
    if storage.scheme_of(path) != "s3" or not opts.get("endpoint_url"):
        return path, None
    import pyarrow.fs as pafs

    scheme, _, host = str(opts["endpoint_url"]).partition("://")
    fs = pafs.S3FileSystem(endpoint_override=host or scheme, scheme=scheme if host else "https",
                           anonymous=bool(opts.get("anon", False)))
    return path.split("://", 1)[1], fs


def _open_run(c: MlflowClient, plan: JobPlan, params: Params, model_cfg: dict,
              loader: dict) -> tuple[str, RegisteredVersion | None]:
    """Reuse the unfinished MLflow run of a resumed job, or the finished one's registered version."""
    exp_id = tracking.ensure_experiment(tracking.experiment_name(plan.stage))
    runs: list[Run] = c.search_runs(
        [exp_id], filter_string=f"tags.`{RUN_TAG}` = '{plan.name}' and tags.`{STORAGE_TAG}` = '{plan.storage_path}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if runs:
        run = runs[0]
        tags = run.data.tags
        if (run.info.status == "FINISHED" and tags.get(VERSION_TAG) and tags.get(HASH_TAG) == plan.params_hash
                and tags.get("train.max_steps") == str(plan.max_steps)):
            try:
                mv = c.get_model_version(model_name(plan.stage), tags[VERSION_TAG])
                return run.info.run_id, RegisteredVersion.from_mlflow(mv, run.data.metrics)
            except MlflowException:  # the version was deleted since: register again below
                log.warning("%s: registered version %s is gone; registering anew", plan.name, tags[VERSION_TAG])
        if run.info.status != "FINISHED" and tags.get(HASH_TAG) == plan.params_hash:
            c.update_run(run.info.run_id, status="RUNNING")
            c.set_tag(run.info.run_id, "train.resumed", "true")
            return run.info.run_id, None
    run = c.create_run(exp_id, run_name=plan.name)
    run_id = run.info.run_id
    train_params = params.train.model_dump(mode="json")
    train_params.pop("fail_at_step")
    logged = {**tracking.flatten("train", train_params), **tracking.flatten("model", model_cfg),
              **tracking.flatten("loader", loader), "stage": plan.stage, "preset": plan.preset,
              "shards": plan.shards}
    tracking.log_params(c, run_id, logged)
    tags = {RUN_TAG: plan.name, STORAGE_TAG: plan.storage_path, HASH_TAG: plan.params_hash,
            "train.max_steps": str(plan.max_steps), "train.fail_at_step": str(params.train.fail_at_step),
            "model.stage": plan.stage, PRESET_TAG: plan.preset,
            **plan.data.tags(), **tracking.git_info(), **tracking.system_info(),
            **{f"depends.{k}": v.uri for k, v in plan.depends_on.items()}}
    tracking.set_tags(c, run_id, tags)
    c.log_text(run_id, json.dumps(model_cfg, indent=1, sort_keys=True), MODEL_CONFIG_ARTIFACT)
    return run_id, None


def root_cause(exc: BaseException) -> BaseException:
    """The exception a worker raised, out of Ray Train's wrappers (lowest failing rank first)."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        exc = failures[min(failures)]
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError carries the original
    return cause if isinstance(cause, BaseException) else exc


def stage_parts(plan: JobPlan, spec: StageSpec, params: Params) -> dict[str, nn.Module]:
    """The trained modules a stage builds on: its registered dependencies, plus the shards' own
    codec (checked against the index's codec version) for a stage that learns on decoded tokens."""
    parts: dict[str, nn.Module] = {k: load_stage_model(v.uri) for k, v in plan.depends_on.items()}
    if spec.codec:
        from imagintalk.models.codec_decoder import ResidualCodebookDecoder
        from imagintalk.tokenizers.locate import find_codec

        codec = find_codec(plan.shards, plan.data.versions.get("codec_version"), params)
        parts["codec"] = ResidualCodebookDecoder.from_codec(codec)
    return parts


def _fit(plan: JobPlan, spec: StageSpec, params: Params, model_cfg: dict, loader: dict, run_id: str,
         uri: str) -> Checkpoint:
    """Run the TorchTrainer; its final checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray(params)
    t = params.train
    deps = stage_parts(plan, spec, params)
    loop = LoopConfig(stage=plan.stage, shards=plan.shards, model_cfg=model_cfg,
                      train=t.model_dump(mode="json"), loader=loader,
                      storage=params.storage.model_dump(mode="json"), max_steps=plan.max_steps,
                      params_hash=plan.params_hash, tracking_uri=uri, run_id=run_id, deps=deps)
    import ray

    layout = worker_layout(t, ray.cluster_resources(), torch.cuda.is_available(), bool(get_settings().ray_address))
    if layout.num_workers != t.num_workers:
        log.warning("%s: %d workers requested, %d fit (one per GPU)", plan.name, t.num_workers, layout.num_workers)
    ray_path, ray_fs = storage_target(plan.storage_path, params)
    env = {k: os.environ[k] for k in _PROPAGATED_ENV if os.environ.get(k)}
    env["MLFLOW_TRACKING_URI"] = uri
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config={"loop": loop},
        scaling_config=ScalingConfig(num_workers=layout.num_workers, use_gpu=layout.use_gpu,
                                     resources_per_worker={"CPU": layout.cpus_per_worker}),
        run_config=RunConfig(storage_path=ray_path, storage_filesystem=ray_fs, name=plan.name,
                             failure_config=FailureConfig(max_failures=t.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=t.checkpoints_to_keep),
                             worker_runtime_env={"env_vars": env}),
    )
    try:
        with _Progress(run_id, uri, plan):
            result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's exception: surface the worker's own error
        cause = root_cause(exc)
        if isinstance(cause, ImaginTalkError):
            raise cause from exc
        first = (str(cause).strip().splitlines() or [""])[0]
        raise TrainingError(plan.run_dir, f"training failed ({type(cause).__name__}: {first[:300]}); "
                                          "rerun the same command to resume from the last checkpoint") from exc
    if result.checkpoint is None:
        raise TrainingError(plan.run_dir, "training finished without a checkpoint")
    return result.checkpoint


def train_and_register(stage: str, shards: str, config: str, storage_root: str | None,
                       params: Params) -> RegisteredVersion:
    """Train ``stage`` on Ray Train and register ``imagintalk-<stage>`` (see the module doc)."""
    from imagintalk.models.config import model_config

    spec = STAGES.get(stage)
    if spec is None:
        raise ConfigError(stage, f"unknown training stage (choose from {', '.join(STAGES)})")
    cfg = model_config(config, params)
    model_cfg = cfg.model_dump(mode="json")
    uri = tracking.configure()
    c = tracking.client(uri)
    shards = storage.absolute(shards)
    plan = plan_job(c, spec, shards, cfg.name, model_cfg,
                    storage.absolute(storage_root or get_settings().storage_root), params)
    loader = spec.loader_config(params, train_speakers=plan.data.speakers.get("train")).model_dump(mode="json")
    if loader["speakers"] is not None:
        log.info("%s learns on %d of the train split's speakers: %s", plan.name, len(loader["speakers"]),
                 ", ".join(loader["speakers"]))
    resume_step = check_resumable(plan, params)
    run_id, done = _open_run(c, plan, params, model_cfg, loader)
    if done is not None:
        log.info("%s: already trained and registered as %s", plan.name, done.uri)
        return done
    if resume_step:
        c.set_tag(run_id, "train.resumed_from_step", str(resume_step))
    started = time.time()
    try:
        checkpoint = _fit(plan, spec, params, model_cfg, loader, run_id, uri)
        module = build_stage(stage, cfg, stage_parts(plan, spec, params))
        with checkpoint.as_directory() as d:
            load_model_state(Path(d), module)
            steps = read_state(Path(d)).step
        val = score_split(module, shards, "val", spec.loader_config(params, train=False), params)
        metrics = {**{f"val_{k}": v for k, v in val.items()}, "train_steps": float(steps),
                   "train_wall_s": time.time() - started}
        tracking.log_step_metrics(c, run_id, metrics, step=steps)
        final = {**_last_train_metrics(c, run_id), **metrics}
        mv = register_stage_version(
            c, run_id, stage, module, cfg.name, plan.data, final,
            training={"steps": str(steps), "workers": str(params.train.num_workers), "seed": str(params.train.seed),
                      "lr": str(params.train.lr), "ray_run": plan.run_dir, "mlflow_run": run_id},
            depends_on={k: v.uri for k, v in plan.depends_on.items()}, extra_tags={RUN_TAG: plan.name})
        c.set_tag(run_id, VERSION_TAG, str(mv.version))
        c.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        c.set_tag(run_id, "train.error", " ".join(str(exc).split())[:500])
        c.set_terminated(run_id, "FAILED")
        raise
    return RegisteredVersion.from_mlflow(mv, final)


def _last_train_metrics(c: MlflowClient, run_id: str) -> dict[str, float]:
    return {k: v for k, v in c.get_run(run_id).data.metrics.items() if not k.startswith("val_")}



class _Progress:
    """A driver-side progress bar fed by rank 0's MLflow metrics (the workers' own output stays
    in the Ray logs). Polls in a daemon thread; never fails the job."""

    def __init__(self, run_id: str, uri: str, plan: JobPlan):
        self.run_id, self.uri, self.plan = run_id, uri, plan
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=PROGRESS_POLL_S * 2)

    def _poll(self) -> None:
        from tqdm import tqdm

        c = tracking.client(self.uri)
        with tqdm(total=self.plan.max_steps, desc=f"train {self.plan.stage}", unit="step") as bar:
            while not self.stop.wait(PROGRESS_POLL_S):
                try:
                    history = c.get_metric_history(self.run_id, "loss")
                except Exception:  # a busy SQLite file: try again next tick
                    continue
                if history:
                    last = max(history, key=lambda m: (m.step, m.timestamp))
                    bar.n = last.step
                    bar.set_postfix(loss=f"{last.value:.4g}")
                    bar.refresh()
