"""CPU seconds of every process while the shard stage runs on Ray with 1 and then 2 workers (64
test-fixture clips, as benchmarks/bench_shards.py makes them): does a clip cost a worker more CPU
when two workers run at once? Beside it, a pure-Python loop alone and two at once (no memory
traffic): what the machine's two cores give when nothing is shared.

    python results/scripts/shard_cpu.py
"""

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests"), str(REPO)]

import psutil  # noqa: E402
import ray  # noqa: E402
from bench_shards import bench_params, make_manifest  # noqa: E402

from imagintalk.ray_session import start_ray  # noqa: E402
from pipelines.shard import shard_manifest  # noqa: E402
from pipelines.tokenizers import fit_codec, fit_unit_tokenizer  # noqa: E402


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command line, user + system CPU seconds) of every process."""
    out = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            t = p.cpu_times()
            out[p.pid] = (" ".join(p.info["cmdline"] or [])[:60], t.user + t.system)
        except psutil.Error:
            pass
    return out


def spin(n: int) -> float:
    t, x = time.perf_counter(), 0
    for i in range(n):
        x += i * i % 7
    return time.perf_counter() - t


def main(clips: int = 64) -> None:
    n = 20_000_000
    alone = spin(n)
    with mp.Pool(2) as pool:
        both = pool.map(spin, [n, n])
    print(f"pure-Python loop: alone {alone:.2f} s, two at once {max(both):.2f} s")
    params = bench_params(clips)
    with tempfile.TemporaryDirectory(prefix="shard-cpu-") as tmp:
        root = Path(tmp)
        manifest, tok = make_manifest(root, clips, 75), root / "tok"
        fit_unit_tokenizer(manifest, tok, params)
        fit_codec(manifest, tok, params)
        start_ray(num_cpus=2)
        try:
            shard_manifest(make_manifest(root / "warm", 2, 75), str(root / "warm_out"), workers=2, params=params,
                           tokenizer_dir=str(tok))
            for workers in (1, 2):
                before, t = cpu_seconds(), time.perf_counter()
                shard_manifest(manifest, str(root / f"out{workers}"), workers=workers, params=params,
                               tokenizer_dir=str(tok))
                wall, after = time.perf_counter() - t, cpu_seconds()
                used = sorted(((cpu - before.get(pid, ("", 0.0))[1], name) for pid, (name, cpu) in after.items()),
                              reverse=True)[:4]
                print(f"workers={workers}: wall {wall:.1f} s")
                for cpu, name in used:
                    print(f"  {cpu:6.1f} s CPU  {name}")
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
