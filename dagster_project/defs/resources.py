"""Resources chosen per environment: storage root (local or s3://), Ray (local or an address),
MLflow (tracking URI), and the params file. The assets hand them to the stage functions as
explicit settings for the duration of the call (``imagintalk.settings.using_settings``), so the
stage code is the same under CLI, DVC and Dagster and the process environment is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from imagintalk.config import Params, load_params, params_file
from imagintalk.settings import ENV_MLFLOW_TRACKING_URI, ENV_RAY_ADDRESS, ENV_STORAGE_ROOT


class StorageResource(dg.ConfigurableResource):
    """Where checkpoints and artifacts go: a local directory or s3://bucket/prefix."""

    root: str = "artifacts"

    def settings(self) -> dict[str, str]:
        return {"storage_root": self.root}


class RayResource(dg.ConfigurableResource):
    """Empty address = a local Ray started on demand; otherwise ray://… or host:port of a cluster."""

    address: str = ""

    def settings(self) -> dict[str, str]:
        return {"ray_address": self.address}


class MLflowResource(dg.ConfigurableResource):
    tracking_uri: str = ""  # empty = $MLFLOW_TRACKING_URI, else sqlite mlflow.db in the working directory

    def settings(self) -> dict[str, str]:
        return {"mlflow_tracking_uri": self.tracking_uri}


class ParamsResource(dg.ConfigurableResource):
    path: str = ""  # empty = $IMAGINTALK_PARAMS or the repo's params.yaml

    def file(self) -> Path:
        return params_file(self.path or None)

    def load(self) -> Params:
        return load_params(self.file())


def stage_settings(*resources: StorageResource | RayResource | MLflowResource) -> dict[str, str]:
    """The settings the resources give a stage function (empty values leave the environment's)."""
    return {k: v for r in resources for k, v in r.settings().items()}


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "storage": StorageResource(root=os.environ.get(ENV_STORAGE_ROOT, "artifacts")),
        "ray": RayResource(address=os.environ.get(ENV_RAY_ADDRESS, "")),
        "mlflow": MLflowResource(tracking_uri=os.environ.get(ENV_MLFLOW_TRACKING_URI, "")),
        "params": ParamsResource(path=os.environ.get("IMAGINTALK_PARAMS", "")),
    }
