"""One asset per registered stage (pipelines/registry.py), partitioned by corpus.

Asset bodies are a few lines: call ``run_stage`` (the function DVC and the CLI call) with the
resources as explicit settings, then report: the data version (a content hash) and the code
version (so staleness shows in the UI), metadata with MLflow links, and the checks. Audit stages
carry a blocking asset check whose result is the GX suite's verdict, so a failed audit stops
everything downstream with a report a person can read; the evaluation carries the gate's floors;
any other result that stops a pipeline (a refused promotion, pipelines/outcome.py) fails the step.
A stage of the partition dvc.yaml describes is committed to DVC as well (dvc_sync.py), so
`dvc status` and `dvc repro` agree with Dagster about what is up to date.
"""

import dagster as dg

from dagster_project.defs.checks import CHECK_SPECS, FLOORS_CHECK, GX_CHECK, floors_check, gx_check
from dagster_project.defs.dvc_sync import record_stage
from dagster_project.defs.metadata import code_version, data_version, result_metadata
from dagster_project.defs.partitions import corpus_partitions
from dagster_project.defs.resources import (
    MLflowResource,
    ParamsResource,
    RayResource,
    StorageResource,
    stage_settings,
)
from imagintalk.settings import using_settings
from pipelines.outcome import stop_reason
from pipelines.registry import STAGES, Stage, run_stage

__all__ = ["ASSETS", "FLOORS_CHECK", "GX_CHECK"]


def _make_asset(stage: Stage) -> dg.AssetsDefinition:
    @dg.asset(
        name=stage.name, deps=list(stage.upstream), partitions_def=corpus_partitions,
        check_specs=CHECK_SPECS.get(stage.name), group_name=_group(stage), code_version=code_version(stage),
        description=f"{stage.func} (pipelines/registry.py)", kinds={"python"},
    )
    def _asset(context: dg.AssetExecutionContext, storage: StorageResource, ray: RayResource,
               mlflow: MLflowResource, params: ParamsResource) -> dg.MaterializeResult:
        prm = params.load()
        with using_settings(**stage_settings(storage, ray, mlflow)):
            result = run_stage(stage.name, corpus=context.partition_key, params=prm)
            meta = result_metadata(result)
            checks = ([gx_check(result, meta)] if GX_CHECK in _check_names(stage)
                      else [floors_check(result, prm)] if FLOORS_CHECK in _check_names(stage) else [])
        context.log.info(meta.get("summary", f"{stage.name} done"))
        reason = stop_reason(result)
        if reason is not None and not checks:  # a refused promotion fails the run, as it exits 1 elsewhere
            raise dg.Failure(description=reason, metadata=meta)
        if reason is None:  # DVC records what Dagster made (dvc_sync.py), as `dvc repro` would have
            recorded = record_stage(stage.name, context.partition_key, params.file(), prm)
            if recorded is not None:
                meta["dvc"] = recorded
                (context.log.info if recorded.startswith("committed") else context.log.warning)(f"dvc: {recorded}")
        return dg.MaterializeResult(metadata=meta, check_results=checks or None, data_version=data_version(result))

    return _asset


def _check_names(stage: Stage) -> set[str]:
    return {spec.name for spec in CHECK_SPECS.get(stage.name, [])}


def _group(stage: Stage) -> str:
    if stage.name.startswith("train_"):
        return "training"
    if stage.name in ("register", "evaluate", "promote"):
        return "registry"
    return "data"


ASSETS = [_make_asset(s) for s in STAGES]
