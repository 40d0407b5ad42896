"""The one place a process starts or joins Ray (sharding's Ray Data pool, Ray Train jobs, Ray Serve).

Authentication is configured explicitly: a local Ray runs with token authentication, which is
Ray's own default for a new cluster; saying so (``RAY_AUTH_MODE``, the only way Ray reads it)
keeps the guarantee and drops the notice Ray prints on every start when the mode is left unset.
A deployment that wants another mode sets ``RAY_AUTH_MODE`` itself.

Before a local Ray starts, :func:`warm_jit_caches` imports librosa's modules once in this process: librosa's
``@guvectorize(cache=True)`` kernels compile at import and write numba's on-disk cache, and two
workers writing that cache at once can pair files from different processes, which segfaults every
later import (numba#10128; a quality run died at its evaluation this way). Writing it here,
before any worker exists, leaves the workers only reading it.
"""

from __future__ import annotations

import os
from typing import Any

from imagintalk.settings import get_settings

AUTH_MODE_ENV = "RAY_AUTH_MODE"
DEFAULT_AUTH_MODE = "token"


def warm_jit_caches() -> None:
    """Compile (or load) the numba-cached kernels of the libraries our workers import, in this
    process and before the workers start (see the module doc)."""
    import importlib

    # librosa loads its submodules lazily: import the ones with cached kernels explicitly
    for name in ("librosa.core.pitch", "librosa.core.audio", "librosa.core.spectrum", "librosa.feature",
                 "librosa.sequence", "librosa.effects", "librosa.util"):
        importlib.import_module(name)
    # ours compile on first call (the compiled 68-point predictor of the shard workers)
    from imagintalk.preprocess.shape_predictor import warm_kernels

    warm_kernels()


def start_ray(num_cpus: int | None = None, *, log_to_driver: bool = False, **init_kwargs: Any) -> bool:
    """Join the cluster at the ``RAY_ADDRESS`` setting, else start a local Ray of ``num_cpus``
    (None: all cores) without the dashboard. Returns False when Ray was already up in this process
    (nothing done), True when this call started or joined it (the caller may shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    warm_jit_caches()
    if AUTH_MODE_ENV not in os.environ:
        os.environ[AUTH_MODE_ENV] = DEFAULT_AUTH_MODE
        from ray._raylet import Config

        Config.initialize("")  # Ray caches the mode at import; re-read it (as ray.init itself does)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = get_settings().ray_address
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, **init_kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver, **init_kwargs)
    return True
