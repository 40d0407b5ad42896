"""Lip aligner: unit error on unseen (validation) speakers against training steps (issue 12).

Continues the quality run's lip-aligner training from its last Ray checkpoint (model, AdamW and
scheduler state; ``$CKPT``, a ``checkpoint_*`` folder) in this process, on the same speakers the
stage trains on (the train split minus the error detector's held-out speakers), and every
``--every`` steps scores all validation clips: UER (Levenshtein over the reference length, as
``evaluate``) and frame accuracy. One process with batch 16 stands in for the run's 2 Ray workers
with batch 8 each. Prints one JSON line per evaluation.

    SHARDS=/tmp/cq/datasets/synthtalk_large/shards CKPT=/tmp/cq/artifacts/train/lip_aligner-.../checkpoint_...\
        python results/scripts/aligner_curve.py --steps 1200 --every 300 --start 1800
"""

import argparse
import json
import os
import time

import torch
from common import PARAMS, SHARDS, batches

from imagintalk.data.loader import make_loader, resolve_shards
from imagintalk.eval.metrics import unit_error_rate
from imagintalk.models.batch import frame_mask, token_mask
from imagintalk.models.config import model_config
from imagintalk.models.lip_aligner import LipAligner
from imagintalk.shards.record import key_to_clip_id
from imagintalk.train.checkpoint import MODEL_FILE, OPTIMIZER_FILE
from imagintalk.train.graph import holdout_split
from imagintalk.train.loop import warmup_schedule


def train_speakers():
    import webdataset as wds
    urls = resolve_shards(SHARDS, "train", PARAMS.storage)
    keys = [k for (k,) in wds.WebDataset(urls, shardshuffle=False, empty_check=False).to_tuple("__key__")]
    return sorted({key_to_clip_id(k).split("/")[1] for k in keys})  # {corpus}/{speaker}/{clip}: the loader's names


@torch.no_grad()
def score(model, val):
    model.eval()
    errors = frames = hits = 0.0
    for b in val:
        out = model(b["lips"], frame_mask(b))
        mask = out.mask & token_mask(b)[:, : out.mask.shape[1]]
        pred, target = out.logits.argmax(-1), b["units"][:, : mask.shape[1]].long()
        for i in range(len(mask)):
            ref, hyp = target[i][mask[i]].numpy(), pred[i][mask[i]].numpy()
            errors += unit_error_rate(ref, hyp) * len(ref)
            hits += float((ref == hyp).sum())
            frames += len(ref)
    model.train()
    return {"val_uer": errors / frames, "val_frame_acc": hits / frames}


def train_step(model, opt, sched, batch) -> float:
    """One AdamW step with the pipeline's gradient clipping; returns the loss."""
    loss, _ = model.loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), PARAMS.train.grad_clip)
    opt.step()
    sched.step()
    return float(loss.detach())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--start", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = os.environ["CKPT"]
    model = LipAligner(model_config("tiny", PARAMS))
    model.load_state_dict(torch.load(os.path.join(ckpt, MODEL_FILE), map_location="cpu", weights_only=True))
    opt = torch.optim.AdamW(model.parameters(), lr=PARAMS.train.lr, weight_decay=PARAMS.train.weight_decay)
    opt.load_state_dict(torch.load(os.path.join(ckpt, OPTIMIZER_FILE), map_location="cpu", weights_only=True))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(0))
    fit, _ = holdout_split(train_speakers(), PARAMS.train.detector_holdout)
    cfg = PARAMS.loader.model_copy(update={"batch_size": args.batch, "speakers": fit})
    val = batches("val", bs=16)
    print(json.dumps({"step": args.start, **score(model, val)}), flush=True)
    step, t0, epoch = args.start, time.time(), 0
    model.train()
    while step < args.start + args.steps:
        cfg_e = cfg.model_copy(update={"seed": cfg.seed + 1000 + epoch})
        for b in make_loader(SHARDS, "train", True, cfg_e):
            loss = train_step(model, opt, sched, b)
            step += 1
            if (step - args.start) % args.every == 0:
                print(json.dumps({"step": step, "train_s": round(time.time() - t0), "loss": loss,
                                  **score(model, val)}), flush=True)
            if step >= args.start + args.steps:
                break
        epoch += 1


if __name__ == "__main__":
    main()
