"""Lip aligner: does auto_avsr's augmentation carry it to unseen faces? (issue 12)

Trains the tiny lip aligner from scratch in this process (one torch thread, batch 16, shuffled
batches) on the training speakers the stage trains on (the train split minus the error
detector's held-out speakers), and every ``--every`` steps scores all validation clips: UER (as
``evaluate``) and frame accuracy, as ``aligner_curve.py`` does. ``--aug`` turns on the pipeline's
augmentation of the aligner's training crops (the loader's, as ``lip_aligner.flip_prob`` and
``time_mask_frames`` set it): ``flip`` mirrors each clip's crops with probability 0.5, ``time``
replaces per second of video one span of up to ``--mask-frames`` frames by the clip's mean frame.
Prints one JSON line per evaluation. (The figures in results/README.md came from this script at
e2cf97a, which drew the same augmentation per batch with its own torch generator.)

    SHARDS=/tmp/exp/c120/datasets/synthtalk_large/shards python results/scripts/aligner_aug.py \
        --steps 600 --every 300 [--aug flip,time]
"""

import argparse
import json
import time

import torch
from aligner_curve import score, train_speakers, train_step
from common import PARAMS, SHARDS, batches

from imagintalk.data.loader import make_loader
from imagintalk.models.config import model_config
from imagintalk.models.lip_aligner import LipAligner
from imagintalk.train.graph import holdout_split
from imagintalk.train.loop import warmup_schedule


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--aug", default="", help="comma-separated: flip, time")
    ap.add_argument("--mask-frames", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    kinds = {k for k in args.aug.split(",") if k}
    torch.manual_seed(args.seed)
    model = LipAligner(model_config("tiny", PARAMS))
    opt = torch.optim.AdamW(model.parameters(), lr=PARAMS.train.lr, weight_decay=PARAMS.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(PARAMS.train.warmup_steps))
    fit, _ = holdout_split(train_speakers(), PARAMS.train.detector_holdout)
    cfg = PARAMS.loader.model_copy(update={"batch_size": args.batch, "speakers": fit,
                                           "flip_prob": 0.5 if "flip" in kinds else 0.0,
                                           "time_mask_frames": args.mask_frames if "time" in kinds else 0})
    val = batches("val", bs=16)
    step, t0, epoch = 0, time.time(), 0
    model.train()
    while step < args.steps:
        before = step
        for b in make_loader(SHARDS, "train", True, cfg.model_copy(update={"seed": cfg.seed + epoch})):
            loss = train_step(model, opt, sched, b)
            step += 1
            if step % args.every == 0:
                print(json.dumps({"aug": sorted(kinds), "step": step, "train_s": round(time.time() - t0),
                                  "loss": round(loss, 4), **score(model, val)}), flush=True)
            if step == 20:
                print(json.dumps({"step": step, "train_s": round(time.time() - t0, 1)}), flush=True)
            if step >= args.steps:
                break
        if step == before:
            raise SystemExit(f"no training batch: none of the {len(fit)} fit speakers is in {SHARDS}")
        epoch += 1


if __name__ == "__main__":
    main()
