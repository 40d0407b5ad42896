"""Normal runs print no library warnings (issue 15): the causes are fixed, not filtered."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _stderr(code: str, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_the_composite_pyfunc_is_typed_so_mlflow_does_not_ask_for_type_hints():
    err = _stderr("import imagintalk.registry.composite", "-W", "always")
    assert "type hints" not in err.lower(), err


@pytest.mark.ray
def test_starting_local_ray_configures_auth_so_ray_prints_no_token_notice():
    """As pipelines/shard.py runs it: local Ray, a Ray Data map over an actor pool."""
    err = _stderr("from imagintalk.ray_session import start_ray\n"
                  "import ray\n"
                  "class Same:\n"
                  "    def __call__(self, row):\n"
                  "        return row\n"
                  "assert start_ray(num_cpus=1) and not start_ray(num_cpus=1)\n"
                  "ray.data.range(4).map(Same, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1).take_all()\n"
                  "ray.shutdown()")
    assert "Token authentication" not in err, err
    assert "deprecated" not in err.lower(), err


def test_jit_caches_are_written_by_the_driver_before_any_worker(tmp_path):
    """numba#10128: librosa's gufunc kernels compile at import and two workers writing numba's
    cache at once can pair files of different processes (a segfault at every later import).
    warm_jit_caches, called by start_ray before any worker exists, writes them first."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from imagintalk.ray_session import warm_jit_caches; warm_jit_caches()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    written = {p.name for p in tmp_path.rglob("*.nbi")}
    assert any(n.startswith("pitch._pi_wrapper") for n in written), written   # yin / pyin
    assert any(n.startswith("guf-pitch._pi_wrapper") for n in written), written
