"""A training job's MLflow run: opened (or reopened for a resumed job) with its params and
provenance tags, found finished and registered for a job that has nothing left to do, closed as
registered or failed."""

from __future__ import annotations

import json
import logging

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from imagintalk.config import Params
from imagintalk.registry import tracking
from imagintalk.registry.stage_models import MODEL_CONFIG_ARTIFACT, PRESET_TAG, model_name
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.train.plan import JobPlan

log = logging.getLogger(__name__)

RUN_TAG = "train.ray_run"
STORAGE_TAG = "train.storage"
HASH_TAG = "train.params_hash"
VERSION_TAG = "registered.version"


def open_run(c: MlflowClient, plan: JobPlan, params: Params, model_cfg: dict,
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


def last_train_metrics(c: MlflowClient, run_id: str) -> dict[str, float]:
    return {k: v for k, v in c.get_run(run_id).data.metrics.items() if not k.startswith("val_")}


def close_registered(c: MlflowClient, run_id: str, version: str | int) -> None:
    c.set_tag(run_id, VERSION_TAG, str(version))
    c.set_terminated(run_id, "FINISHED")


def close_failed(c: MlflowClient, run_id: str, exc: BaseException) -> None:
    c.set_tag(run_id, "train.error", " ".join(str(exc).split())[:500])
    c.set_terminated(run_id, "FAILED")
