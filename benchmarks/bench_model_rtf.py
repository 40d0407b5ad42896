"""Real-time factor of ImaginTalk inference on CPU: tiny and base, a 3-s clip, sampler steps 8/16/32.

RTF = wall-clock seconds of ``ImaginTalk.generate`` / seconds of speech produced (lower is
better; goal: ≤ 0.2 for tiny at 16 steps on 2 threads). Weights are random — speed does not
depend on them. Each cell is the median of ``--repeats`` runs after one warm-up; "cfg" runs with
guidance on all three conditions (one extra DiT pass per condition per step).

    .venv/bin/python benchmarks/bench_model_rtf.py [--presets tiny,base] [--steps 8,16,32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# On shared cores, OpenMP threads that spin at barriers while a sibling is descheduled made the
# 2-thread runs 10-30x slower than 1 thread; passive waiting removes that. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from imagintalk.config import load_params  # noqa: E402
from imagintalk.models import ImaginTalk, model_config  # noqa: E402
from imagintalk.models.batch import random_batch  # noqa: E402
from imagintalk.models.codec_decoder import ResidualCodebookDecoder  # noqa: E402

GUIDANCE_ON = {"lip": 1.0, "id": 1.0, "emo": 1.0}
GOAL = ("tiny", 16, 0.2)


def time_generate(model: ImaginTalk, batch: dict, steps: int, guidance: dict | None, repeats: int) -> float:
    model.generate_batch(batch, steps=steps, guidance=guidance, seed=0)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        model.generate_batch(batch, steps=steps, guidance=guidance, seed=r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,base")
    ap.add_argument("--steps", default="8,16,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    steps_list = [int(s) for s in args.steps.split(",")]
    print(f"torch {torch.__version__}, {args.threads} threads (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), "
          f"clip {args.seconds:.1f} s, load average {os.getloadavg()[0]:.1f} (other processes slow every cell)")
    print(f"{'preset':>7} {'params':>8} {'steps':>5} {'seconds':>8} {'RTF':>6} {'seconds cfg':>11} {'RTF cfg':>7}")
    goal_rtf = None
    for preset in args.presets.split(","):
        cfg = model_config(preset, params)
        torch.manual_seed(0)
        model = ImaginTalk(cfg, ResidualCodebookDecoder.random(cfg.vocab)).eval()
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        frames = round(args.seconds * cfg.vocab.fps)
        batch = random_batch(cfg.vocab, [frames], seed=0)
        speech_s = frames / cfg.vocab.fps
        for steps in steps_list:
            plain = time_generate(model, batch, steps, None, args.repeats)
            guided = time_generate(model, batch, steps, GUIDANCE_ON, args.repeats)
            rtf = plain / speech_s
            if (preset, steps) == GOAL[:2]:
                goal_rtf = rtf
            print(f"{preset:>7} {n_params:>7.1f}M {steps:>5} {plain:>8.3f} {rtf:>6.3f} {guided:>11.3f} "
                  f"{guided / speech_s:>7.3f}")
    if goal_rtf is not None:
        verdict = "met" if goal_rtf <= GOAL[2] else "NOT met"
        print(f"goal RTF ≤ {GOAL[2]} for {GOAL[0]} at {GOAL[1]} steps: {goal_rtf:.3f} ({verdict})")


if __name__ == "__main__":
    main()
