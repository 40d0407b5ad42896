"""Deployment settings read from the environment: what changes between the laptop default and a
cluster. Defaults are the embedded local setup (local Ray started on demand, MLflow on SQLite in
the working directory, local storage); infra/ sets these variables for the cluster and a test
checks that the manifests use exactly these names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_RAY_ADDRESS = "RAY_ADDRESS"
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_STORAGE_ROOT = "IMAGINTALK_STORAGE_ROOT"
ENV_S3_ENDPOINT = "AWS_ENDPOINT_URL"
SERVE_PORT = 8000
DAGSTER_PORT = 3000
MLFLOW_PORT = 5000
IMAGE = "ghcr.io/imagintalk/imagintalk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    ray_address: str | None = Field(default=None, alias=ENV_RAY_ADDRESS)
    mlflow_tracking_uri: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'mlflow.db'}", alias=ENV_MLFLOW_TRACKING_URI
    )
    storage_root: str = Field(default_factory=lambda: str(Path.cwd() / "artifacts"), alias=ENV_STORAGE_ROOT)
    s3_endpoint_url: str | None = Field(default=None, alias=ENV_S3_ENDPOINT)
    serve_host: str = Field(default="127.0.0.1", alias="IMAGINTALK_SERVE_HOST")
    serve_port: int = Field(default=SERVE_PORT, alias="IMAGINTALK_SERVE_PORT")


# Settings given explicitly by a caller (Dagster's resources) for the code it runs, in preference
# to the environment, without changing the process's environment for anyone else.
_GIVEN: ContextVar[dict[str, str] | None] = ContextVar("imagintalk_settings", default=None)


def get_settings() -> Settings:
    return Settings(**(_GIVEN.get() or {}))


def given_setting(name: str) -> str | None:
    """A setting given explicitly (``using_settings``) or by its environment variable; None when
    neither (the caller then falls back to params.yaml rather than to Settings' local default)."""
    alias = Settings.model_fields[name].alias
    return (_GIVEN.get() or {}).get(name) or (os.environ.get(alias) if alias else None) or None


@contextmanager
def using_settings(**values: str | None) -> Iterator[Settings]:
    """Run a block with these settings (field names: ``storage_root``, ``ray_address``,
    ``mlflow_tracking_uri``, ...); empty values leave the environment's in place."""
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}")
    token = _GIVEN.set({**(_GIVEN.get() or {}), **{k: v for k, v in values.items() if v}})
    try:
        yield get_settings()
    finally:
        _GIVEN.reset(token)
