"""MLflow tracking: where runs go and what every training run records about its provenance.

Every training stage logs to the experiment ``imagintalk-<stage>`` on the tracking URI from
:mod:`imagintalk.settings` (SQLite in the working directory by default, a server on a cluster).
A run carries what is needed to retrain it byte-for-byte and to trust its numbers later: the
data version (the shard index's ``content_hash``), the tokenizer and codec versions, the git
commit with a dirty flag, the library versions and the machine it ran on.

Ray Train workers are separate processes: they get the tracking URI and the run id in their
config and call :func:`log_step_metrics` from rank 0 (the V2 trainer refuses MLflow callbacks).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from imagintalk import storage
from imagintalk.config import StorageConfig
from imagintalk.conventions import INDEX_NAME
from imagintalk.errors import DataError
from imagintalk.settings import get_settings

EXPERIMENT_PREFIX = "imagintalk-"
SQLITE_PREFIX = "sqlite:///"
ARTIFACT_DIR = "mlartifacts"
# MLflow refuses param values longer than this (it stores them in a fixed-width column).
_MAX_PARAM_CHARS = 6000
# log_batch accepts at most this many metrics/params per call.
_BATCH_LIMIT = 100
REPO_DIR = Path(__file__).resolve().parents[2]


def tracking_uri() -> str:
    return get_settings().mlflow_tracking_uri


def configure(uri: str | None = None) -> str:
    """Point the MLflow fluent API and the registry at ``uri`` (default: settings) and return it."""
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client(uri: str | None = None) -> MlflowClient:
    uri = configure(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ui_url(fragment: str, uri: str | None = None) -> str:
    """A page of the MLflow UI (``fragment`` such as ``runs/<id>`` or ``models/<name>/versions/<v>``):
    on the tracking server itself, or on a local ``mlflow ui`` (default port) over a file/SQLite store."""
    uri = uri or tracking_uri()
    base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/{fragment}"


def experiment_name(stage: str) -> str:
    return f"{EXPERIMENT_PREFIX}{stage}"


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite-backed store live beside the database file, not in whatever the
    current directory happens to be (MLflow's default, ``./mlruns``); a server decides itself."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    db = Path(uri.removeprefix(SQLITE_PREFIX)).resolve()
    return str(db.parent / ARTIFACT_DIR / experiment)


def ensure_experiment(name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created on first use."""
    uri = uri or tracking_uri()
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=artifact_location(uri, name))


@dataclass(frozen=True)
class DataVersion:
    """What a shard root's ``index.json`` says about the data a model was trained on."""

    shards: str
    content_hash: str
    versions: dict[str, str] = field(default_factory=dict)   # tokenizer / codec / pipeline versions
    counts: dict[str, Any] = field(default_factory=dict)
    speakers: dict[str, list[str]] = field(default_factory=dict)  # split -> speakers (the index's)

    def tags(self) -> dict[str, str]:
        out = {"data.shards": self.shards, "data.version": self.content_hash}
        out.update({f"data.{k}": v for k, v in self.versions.items()})
        return out


def _collect_versions(index: Mapping[str, Any]) -> dict[str, str]:
    """Version strings anywhere at the top level or one level down (``{"tokenizers": {...}}``)."""
    found: dict[str, str] = {}
    for key, value in index.items():
        if isinstance(value, str) and key.endswith("version"):
            found[key] = value
        elif isinstance(value, Mapping) and key in ("versions", "tokenizers", "tokenizer", "codec"):
            for sub, v in value.items():
                if isinstance(v, str):
                    name = sub if sub.endswith("version") else f"{key}_{sub}"
                    found[name] = v
    return found


def read_data_version(shards: str, cfg: StorageConfig | None = None) -> DataVersion:
    """The data version ``{shards}/index.json`` records (read as the shard room reads it, unverified:
    the version is what the index says); a missing, unreadable or hashless index is a DataError
    naming the file."""
    from imagintalk.shards.index import read_index

    index = read_index(shards, cfg, verify=False)
    content_hash = index.get("content_hash") if isinstance(index, dict) else None
    if not isinstance(content_hash, str) or not content_hash:
        raise DataError(storage.join(shards, INDEX_NAME), "dataset index has no content_hash")
    counts = {k: v for k, v in index.items() if k in ("counts", "hours", "n_samples")}
    splits = index.get("splits") if isinstance(index.get("splits"), dict) else {}
    speakers = {s: list(v.get("speakers", [])) for s, v in splits.items() if isinstance(v, dict)}
    return DataVersion(shards=str(shards), content_hash=content_hash,
                       versions=_collect_versions(index), counts=counts, speakers=speakers)


def git_info(repo: Path = REPO_DIR) -> dict[str, str]:
    """Commit and dirty flag of the code that trained; empty values when there is no git."""
    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                 timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    return {"git.commit": commit.strip(), "git.dirty": str(bool(status.strip())).lower()}


def system_info() -> dict[str, str]:
    """Library versions and the machine: enough to explain a metric that moved between runs."""
    import ray
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "sys.python": platform.python_version(),
        "sys.platform": platform.platform(),
        "sys.torch": torch.__version__,
        "sys.ray": ray.__version__,
        "sys.mlflow": mlflow.__version__,
        "sys.cpu_count": str(os.cpu_count()),
        "sys.device": device,
        "sys.cuda_devices": str(torch.cuda.device_count()),
    }


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested config → flat ``a.b.c`` param dict (MLflow params are flat strings)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        value = asdict(value)
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    text = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return {prefix: text[:_MAX_PARAM_CHARS]}


def log_params(c: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
    for i in range(0, len(items), _BATCH_LIMIT):
        c.log_batch(run_id, params=items[i:i + _BATCH_LIMIT])


def set_tags(c: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    items = [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, len(items), _BATCH_LIMIT):
        c.log_batch(run_id, tags=items[i:i + _BATCH_LIMIT])


def log_step_metrics(c: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int,
                     timestamp_ms: int | None = None) -> None:
    """One batch of per-step metrics (called by rank 0 inside the Ray Train loop)."""
    import time

    ts = timestamp_ms or int(time.time() * 1000)
    items = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
    for i in range(0, len(items), _BATCH_LIMIT):
        c.log_batch(run_id, metrics=items[i:i + _BATCH_LIMIT])


def metric_curve(c: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """``step -> value`` of a metric; when a resumed run re-logged a step, the last value wins."""
    hist = sorted(c.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return {m.step: m.value for m in hist}
