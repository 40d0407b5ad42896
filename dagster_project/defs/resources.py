"""Resources chosen per environment: storage root (local or s3://), Ray (local or an address),
MLflow (tracking URI), and the params file. Each exports its setting to the environment the stage
functions read (imagintalk/settings.py), so the stage code is the same under CLI, DVC and Dagster."""

from __future__ import annotations

import os

import dagster as dg

from imagintalk.config import Params, load_params
from imagintalk.settings import ENV_MLFLOW_TRACKING_URI, ENV_RAY_ADDRESS, ENV_STORAGE_ROOT


class StorageResource(dg.ConfigurableResource):
    """Where checkpoints and artifacts go: a local directory or s3://bucket/prefix."""

    root: str = "artifacts"

    def apply(self) -> None:
        os.environ[ENV_STORAGE_ROOT] = self.root


class RayResource(dg.ConfigurableResource):
    """Empty address = a local Ray started on demand; otherwise ray://… or host:port of a cluster."""

    address: str = ""

    def apply(self) -> None:
        if self.address:
            os.environ[ENV_RAY_ADDRESS] = self.address


class MLflowResource(dg.ConfigurableResource):
    tracking_uri: str = ""  # empty = sqlite mlflow.db in the working directory

    def apply(self) -> None:
        if self.tracking_uri:
            os.environ[ENV_MLFLOW_TRACKING_URI] = self.tracking_uri


class ParamsResource(dg.ConfigurableResource):
    path: str = ""  # empty = $IMAGINTALK_PARAMS or the repo's params.yaml

    def load(self) -> Params:
        return load_params(self.path or None)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "storage": StorageResource(root=os.environ.get(ENV_STORAGE_ROOT, "artifacts")),
        "ray": RayResource(address=os.environ.get(ENV_RAY_ADDRESS, "")),
        "mlflow": MLflowResource(tracking_uri=os.environ.get(ENV_MLFLOW_TRACKING_URI, "")),
        "params": ParamsResource(path=os.environ.get("IMAGINTALK_PARAMS", "")),
    }
