"""Training throughput per model stage: steps/s, samples/s and the share of each step spent
waiting on data (issue 16 part 3; goals: data wait < 5 %, loader >= 3x the step rate).

Shards of random records at the documented shapes (bench_loader.py's) are written once; then, for
each stage of the model graph in training order, the stage's own module (``build_stage``, fresh
upstream parts) trains in this process on the stage's own loader settings
(``StageSpec.loader_config``), with ``--threads`` torch threads as one Ray Train worker would
(``train.cpus_per_worker``). Each step is timed in two parts: ``next(batch)`` (data) and
forward + backward + AdamW (compute). The loader alone is then read for as many batches, so its
rate can be set beside the step rate. The vocoder learns on ground-truth mels here (no fitted
codec in a random corpus): its decode of codec tokens, a table lookup, is left out.

With ``--autocast`` each stage is also timed with its forward pass under bfloat16 autocast (the
``train.stage_autocast`` setting), in its own row: which stages gain from mixed precision here.

    python benchmarks/bench_train.py [--steps 30] [--threads 1] [--preset tiny] [--stages a,b] [--autocast]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import build_shards  # noqa: E402

from imagintalk.config import load_params  # noqa: E402
from imagintalk.data import make_loader  # noqa: E402
from imagintalk.models.config import model_config  # noqa: E402
from imagintalk.models.stages import build_stage  # noqa: E402
from imagintalk.train.graph import ORDER, STAGES  # noqa: E402


def batches_forever(root: str, cfg):
    while True:
        yield from make_loader(root, "train", True, cfg)


def bench_stage(stage: str, root: str, params, preset: str, steps: int, warmup: int,
                bf16: bool = False) -> dict[str, float]:
    cfg = model_config(preset, params)
    module = build_stage(stage, cfg)
    trainable = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.train.lr, weight_decay=params.train.weight_decay)
    loader_cfg = STAGES[stage].loader_config(params)
    stream = batches_forever(root, loader_cfg)
    module.train()
    data_s = compute_s = 0.0
    samples = 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(stream)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = module.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, params.train.grad_clip)
        opt.step()
        t2 = time.perf_counter()
        if step >= warmup:
            data_s, compute_s, samples = data_s + t1 - t0, compute_s + t2 - t1, samples + len(batch["keys"])
    t0 = time.perf_counter()
    n = sum(len(b["keys"]) for b in itertools.islice(batches_forever(root, loader_cfg), steps))
    loader_s = time.perf_counter() - t0
    total = data_s + compute_s
    return {"steps_per_s": steps / total, "samples_per_s": samples / total, "data_wait": data_s / total,
            "loader_batches_per_s": steps / loader_s, "loader_samples_per_s": n / loader_s,
            "batch": loader_cfg.batch_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--stages", default=",".join(ORDER))
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--autocast", action="store_true", help="also time each stage under bfloat16 autocast")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = load_params()
    print(f"preset {args.preset}, {args.threads} torch thread(s), {args.steps} timed steps per stage")
    print(f"{'stage':<20}{'steps/s':>9}{'samples/s':>11}{'data wait':>11}{'loader/step':>13}")
    worst_wait, worst_ratio = 0.0, float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        build_shards(Path(tmp), args.clips, 75, 32, units=params.tokenizer.k)
        for stage, bf16 in itertools.product(args.stages.split(","), (False, True) if args.autocast else (False,)):
            r = bench_stage(stage, tmp, params, args.preset, args.steps, args.warmup, bf16)
            ratio = r["loader_batches_per_s"] / r["steps_per_s"]
            if not bf16:
                worst_wait, worst_ratio = max(worst_wait, r["data_wait"]), min(worst_ratio, ratio)
            name = f"{stage} (bf16)" if bf16 else stage
            print(f"{name:<20}{r['steps_per_s']:>9.2f}{r['samples_per_s']:>11.1f}{r['data_wait']:>10.1%}"
                  f"{ratio:>12.1f}x", flush=True)
    print(f"worst data wait {worst_wait:.1%} (goal < 5%); slowest loader {worst_ratio:.1f}x the step rate "
          f"(goal >= 3x)")


if __name__ == "__main__":
    main()
