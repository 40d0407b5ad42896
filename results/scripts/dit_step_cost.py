"""Milliseconds per training step of a tiny style-DiT alone (AdamW, batch 8 x 150 tokens, random
codes and conditions, one thread) at each codebook size: what the heads cost.

    python results/scripts/dit_step_cost.py --sizes 256 1024
"""

import argparse
import time

import torch
from common import PARAMS

from imagintalk.models.config import model_config
from imagintalk.models.style_dit import StyleDiT


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    for size in args.sizes:
        cfg = model_config("tiny", PARAMS)
        cfg = cfg.model_copy(update={"vocab": cfg.vocab.model_copy(update={"codebook_size": size})})
        dit = StyleDiT(cfg, 64)
        opt = torch.optim.AdamW(dit.parameters())
        b, n, d = 8, 150, cfg.style_dit.dim
        codes = torch.randint(0, size, (b, cfg.vocab.codec_levels, n))
        mask, known = torch.ones(b, n, dtype=torch.bool), torch.ones(b, dtype=torch.bool)
        cond = (torch.randn(b, n, 64), torch.randn(b, d), torch.randn(b, n, d))
        for i in range(args.steps + 3):
            if i == 3:  # three warm-up steps
                t = time.perf_counter()
            loss, _ = dit.loss(codes, mask, *cond, known)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{cfg.vocab.codec_levels} x {size}: {(time.perf_counter() - t) / args.steps * 1000:.1f} ms/step")


if __name__ == "__main__":
    main()
