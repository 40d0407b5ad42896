"""What an asset's materialization says about its stage's result: the data version (a content
hash, so Dagster marks downstream assets stale when it changes), the code version (a hash of the
code the stage watches, as dvc.yaml does), and metadata a person reads in the UI: the summary,
the scalar fields, and links to the MLflow run and registered model version."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from imagintalk import storage
from imagintalk.registry import tracking
from imagintalk.registry.versions import RegisteredVersion
from pipelines.outcome import summary_line
from pipelines.registry import Stage

REPO = Path(__file__).resolve().parents[2]


def code_version(stage: Stage) -> str:
    """Hash of the stage's function name and every Python file under the code paths it watches."""
    h = hashlib.sha256(stage.func.encode())
    for rel in sorted(stage.code):
        path = REPO / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            h.update(f"\0{f.relative_to(REPO)}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _registered(result: Any) -> RegisteredVersion | None:
    version = getattr(result, "version", None)
    return version if isinstance(version, RegisteredVersion) else None


def data_version(result: Any) -> dg.DataVersion | None:
    """The version of what the stage made: the shard index's content hash, the manifest's sha256,
    a tokenizer's version, a registered model version, an evaluation run; None where the result
    names none (Dagster then versions the materialization itself)."""
    if getattr(result, "content_hash", None):
        return dg.DataVersion(result.content_hash)
    manifest = getattr(result, "manifest_path", None)
    if manifest is not None and Path(manifest).is_file():
        return dg.DataVersion(storage.sha256_file(manifest))
    registered = _registered(result)
    if registered is not None:
        return dg.DataVersion(f"{registered.name}/{registered.version}")
    if isinstance(getattr(result, "version", None), str) and result.version:
        return dg.DataVersion(result.version)
    if getattr(result, "run_id", None):
        return dg.DataVersion(result.run_id)
    return None


def mlflow_links(result: Any) -> dict[str, dg.MetadataValue]:
    """Links to the MLflow run and model version a stage made (training, register, evaluate)."""
    links: dict[str, dg.MetadataValue] = {}
    registered = _registered(result)
    run_id = registered.run_id if registered is not None else getattr(result, "run_id", None)
    if run_id:
        links["mlflow_run"] = dg.MetadataValue.url(tracking.ui_url(f"runs/{run_id}"))
    if registered is not None:
        links["model_version"] = dg.MetadataValue.text(registered.uri)
        links["model_version_page"] = dg.MetadataValue.url(
            tracking.ui_url(f"models/{registered.name}/versions/{registered.version}"))
    return links


def result_metadata(result: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    line = summary_line(result)
    if line:
        meta["summary"] = line
    if dataclasses.is_dataclass(result):
        for k, v in dataclasses.asdict(result).items():
            if isinstance(v, str | int | float | bool):
                meta[k] = v
    return {**meta, **mlflow_links(result)}
