"""One asset per registered stage (pipelines/registry.py), partitioned by corpus.

Asset bodies are a few lines: apply the resources, call ``run_stage`` (the function DVC and the
CLI call), attach metadata. Audit stages carry a blocking asset check whose result is the GX
suite's verdict, so a failed audit stops everything downstream with a report a person can read;
any other result that stops a pipeline (a refused promotion, pipelines/outcome.py) fails the step.
"""


import dataclasses
from typing import Any

import dagster as dg

from dagster_project.defs.partitions import corpus_partitions
from dagster_project.defs.resources import MLflowResource, ParamsResource, RayResource, StorageResource
from pipelines.outcome import stop_reason
from pipelines.registry import STAGES, Stage, run_stage

AUDIT_STAGES = {"audit_manifest", "audit_shards"}
GX_CHECK = "gx_blocking_expectations"


def _metadata(result: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    line = getattr(result, "summary_line", None)
    if callable(line):
        meta["summary"] = line()
    if dataclasses.is_dataclass(result):
        for k, v in dataclasses.asdict(result).items():
            if isinstance(v, str | int | float | bool) and v is not None:
                meta[k] = v
    return meta


def _make_asset(stage: Stage) -> dg.AssetsDefinition:
    check_specs = (
        [dg.AssetCheckSpec(GX_CHECK, asset=stage.name, blocking=True,
                           description="Great Expectations suite: blocking expectations all pass")]
        if stage.name in AUDIT_STAGES else None
    )

    @dg.asset(
        name=stage.name, deps=list(stage.upstream), partitions_def=corpus_partitions,
        check_specs=check_specs, group_name=_group(stage), description=f"{stage.func} (pipelines/registry.py)",
        kinds={"python"},
    )
    def _asset(context: dg.AssetExecutionContext, storage: StorageResource, ray: RayResource,
               mlflow: MLflowResource, params: ParamsResource) -> dg.MaterializeResult:
        for res in (storage, ray, mlflow):
            res.apply()
        result = run_stage(stage.name, corpus=context.partition_key, params=params.load())
        meta = _metadata(result)
        context.log.info(meta.get("summary", f"{stage.name} done"))
        if stage.name in AUDIT_STAGES:
            check = dg.AssetCheckResult(
                check_name=GX_CHECK, passed=bool(result.passed),
                severity=dg.AssetCheckSeverity.ERROR, metadata=meta)
            return dg.MaterializeResult(metadata=meta, check_results=[check])
        reason = stop_reason(result)
        if reason is not None:  # a refused promotion fails the run, as it exits 1 from the CLI and DVC
            raise dg.Failure(description=reason, metadata=meta)
        return dg.MaterializeResult(metadata=meta)

    return _asset


def _group(stage: Stage) -> str:
    if stage.name.startswith("train_"):
        return "training"
    if stage.name in ("register", "evaluate", "promote"):
        return "registry"
    return "data"


ASSETS = [_make_asset(s) for s in STAGES]
