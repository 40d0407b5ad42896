"""The driver side of a stage's training job: plan, launch on Ray Train, score, register.

``train_and_register(stage, shards, config, storage, params)``:

1. plans the job (:mod:`imagintalk.train.plan`): the data version from the shard index, the
   registered stages this one builds on, the Ray run name ``{stage}-{data_version[:12]}-{config}``
   under ``{storage}/train`` (the same name resumes from that run's latest checkpoint, so a killed
   job is simply rerun) and the params hash a resumed checkpoint must match;
2. opens (or, for a resumed job, reopens) the MLflow run (:mod:`imagintalk.train.run_record`);
3. runs the shared ``train_loop_per_worker`` in a ``TorchTrainer`` on the worker group that fits
   (:mod:`imagintalk.train.placement`: local Ray on demand, ``RAY_ADDRESS`` for a cluster), with a
   progress bar fed by MLflow (:mod:`imagintalk.train.progress`);
4. loads the final checkpoint, scores the val split, registers ``imagintalk-<stage>`` with its
   model card.

A rerun of a job whose MLflow run already finished and registered returns that version without
training again (same data, same params: nothing to do).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from ray.train import Checkpoint
from torch import nn

from imagintalk import storage
from imagintalk.config import Params
from imagintalk.errors import ConfigError, ImaginTalkError
from imagintalk.registry import tracking
from imagintalk.registry.stage_models import load_stage_model, register_stage_version
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.settings import get_settings
from imagintalk.train.checkpoint import load_model_state, read_state
from imagintalk.train.graph import skip_reason
from imagintalk.train.loop import LoopConfig, train_loop_per_worker
from imagintalk.train.placement import ensure_ray, storage_target, worker_env, worker_layout
from imagintalk.train.plan import JobPlan, check_resumable, plan_job
from imagintalk.train.progress import TrainingProgress
from imagintalk.train.run_record import RUN_TAG, close_failed, close_registered, last_train_metrics, open_run
from imagintalk.train.stages import STAGES, StageSpec, build_stage, score_split

log = logging.getLogger(__name__)


class TrainingError(ImaginTalkError):
    """A training job failed; its checkpoints stay, and rerunning resumes from the latest."""

    kind = "train"


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
    env = worker_env(uri)
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
        with TrainingProgress(run_id, uri, plan.stage, plan.max_steps):
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
    reason = skip_reason(stage, params)
    if reason is not None:  # pipelines.train.train_stage records the skip instead of calling this
        raise ConfigError(stage, f"not trained under these params: {reason}")
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
    run_id, done = open_run(c, plan, params, model_cfg, loader)
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
            load_model_state(Path(d), module, averaged=True)
            steps = read_state(Path(d)).step
        val = score_split(module, shards, "val", spec.loader_config(params, train=False), params)
        metrics = {**{f"val_{k}": v for k, v in val.items()}, "train_steps": float(steps),
                   "train_wall_s": time.time() - started}
        tracking.log_step_metrics(c, run_id, metrics, step=steps)
        final = {**last_train_metrics(c, run_id), **metrics}
        mv = register_stage_version(
            c, run_id, stage, module, cfg.name, plan.data, final,
            training={"steps": str(steps), "workers": str(params.train.num_workers), "seed": str(params.train.seed),
                      "lr": str(params.train.lr), "ray_run": plan.run_dir, "mlflow_run": run_id},
            depends_on={k: v.uri for k, v in plan.depends_on.items()}, extra_tags={RUN_TAG: plan.name})
        close_registered(c, run_id, mv.version)
    except BaseException as exc:
        close_failed(c, run_id, exc)
        raise
    return RegisteredVersion.from_mlflow(mv, final)
