"""Where a training job runs: Ray (started or joined once per process), the worker group that fits
there, the storage Ray Train checkpoints to, and the environment the workers inherit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagintalk import storage
from imagintalk.config import Params, TrainConfig
from imagintalk.ray_session import start_ray
from imagintalk.settings import get_settings

# Driver environment a worker needs to reach the same storage, tracking server and pretrained
# weights (a Ray started before the driver set the cache would otherwise look elsewhere).
PROPAGATED_ENV = ("MLFLOW_TRACKING_URI", "FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                  "IMAGINTALK_STORAGE_ROOT", "IMAGINTALK_PARAMS", "IMAGINTALK_PRETRAINED_CACHE",
                  "IMAGINTALK_DERIVED_CACHE")


def ensure_ray(params: Params) -> None:
    """Connect to ``RAY_ADDRESS`` or start a local Ray sized for the job (once per process)."""
    t = params.train
    needed = t.num_workers * t.cpus_per_worker
    # Locally, worker logs stay in Ray's session logs: without the dashboard (not installed) Ray
    # Train's placement-group cleaner floods the driver with state-API warnings. Progress comes
    # from the MLflow metrics instead (imagintalk.train.progress), failures from the raised error.
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


def worker_env(tracking_uri: str) -> dict[str, str]:
    """The environment variables the workers get: the driver's storage/tracking ones, and the run's
    tracking URI."""
    env = {k: os.environ[k] for k in PROPAGATED_ENV if os.environ.get(k)}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env
