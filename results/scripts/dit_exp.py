"""Style-DiT from ground-truth units: speakers, steps and sampler (results/README.md).

Fits the stacked-pair residual codec on the train clips and re-encodes every batch with it,
trains a unit BERT (the teacher c_lip over ground-truth units), then the tiny style-DiT, and at
the given steps evaluates on the val clips (unseen speakers) and, with --eval-train, on 2 batches
of train-speaker clips. With --load it skips training and evaluates a saved stage instead.

Evaluation of one split, per guidance weight: masked accuracy of the training loss (under
torch.manual_seed(1)); then, at temperature 1.0 and 0.0, 16-step sampling (generator seed 0),
the level-0 code accuracy and the WER of pocketsphinx (GRID grammar) on Griffin-Lim audio of
the decoded codes. Each evaluation prints one JSON line prefixed with --tag.
"""

import argparse
import json
import time

import numpy as np
import torch
from common import PARAMS, batches, clip_keys, clip_mels, gl_wave, metas, wer_of

from imagintalk.models.batch import frame_mask
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.models.stages import build_stage
from imagintalk.tokenizers.codec import ResidualCodec

SAMPLER_STEPS = 16
TEMPERATURES = (1.0, 0.0)
BERT_LR = 1e-3


def parse_args():
    """Command line: training, evaluation and checkpoint knobs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="style-DiT training steps")
    ap.add_argument("--lr", type=float, default=1e-3, help="style-DiT AdamW learning rate")
    ap.add_argument("--dim", type=int, default=64, help="style-DiT and face-style width")
    ap.add_argument("--layers", type=int, default=2, help="style-DiT blocks")
    ap.add_argument("--bs", type=int, default=8, help="training batch size")
    ap.add_argument("--bert-steps", type=int, default=300, help="unit BERT training steps (lr 1e-3)")
    ap.add_argument("--evals", default="500,1000", help="comma list of steps at which to evaluate")
    ap.add_argument("--eval-train", action="store_true", help="also evaluate 2 batches of train-speaker clips")
    ap.add_argument("--save", default="", help="write the stage's state dict here after every evaluation")
    ap.add_argument("--load", default="", help="skip training and evaluate the stage saved here")
    ap.add_argument("--guidance", default="0", help="comma list of lip guidance weights (id weight = lip/3)")
    ap.add_argument("--tag", default="x", help="prefix of the result lines")
    return ap.parse_args()


def recode(batch, codec):
    """Replace the batch's codes by ``codec``'s codes of its mels (in place; returns the batch)."""
    codes = torch.zeros_like(batch["codes"])
    for i in range(len(batch["keys"])):
        n = int(batch["mel_mask"][i].sum())
        c = torch.from_numpy(codec.encode(batch["mel"][i, :, :n].numpy()).astype(np.int64))
        codes[i, :, : c.shape[1]] = c
    batch["codes"] = codes
    return batch


def train_unit_bert(bert, train, steps):
    """Train the unit BERT for ``steps`` steps over the train batches in order."""
    opt = torch.optim.AdamW(bert.parameters(), lr=BERT_LR)
    t = time.time()
    metrics = {}
    for s in range(steps):
        loss, metrics = bert.loss(train[s % len(train)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"bert {steps} steps {time.time() - t:.0f}s {metrics}", flush=True)


def guidance_weights(lip):
    """Classifier-free guidance weights for a lip weight: id = lip/3, emotion off."""
    return {"lip": lip, "id": lip / 3, "emo": 0.0}


def evaluate_split(stage, decoder, split, batch_list, meta, step, guidance, tag):
    """Print masked accuracy, level-0 code accuracy and WER at each temperature for one split."""
    keys = clip_keys(batch_list)
    stage.eval()
    accs = []
    with torch.no_grad():
        torch.manual_seed(1)
        for b in batch_list:
            _, m = stage.loss(b)
            accs.append(m["masked_acc"])
    res = {"split": split, "step": step, "guidance": guidance, "masked_acc": float(np.mean(accs))}
    for temp in TEMPERATURES:
        waves = []
        with torch.no_grad():
            for b in batch_list:
                c_lip, mask = stage.refiner.teacher_c_lip(b)
                style = stage.face_style(b["identity"], b["face"], b["emotion"], frame_mask(b))
                g = torch.Generator().manual_seed(0)
                codes = stage.dit.sample(mask, c_lip, style.c_id, style.c_emo[:, : mask.shape[1]], style.emo_known,
                                         steps=SAMPLER_STEPS, generator=g, temperature=temp, guidance=guidance)
                # as in the runs reported: the accuracy of the split's last batch
                hits = (codes[:, 0] == b["codes"][:, 0, : mask.shape[1]]) & mask
                acc0 = float(hits.sum() / mask.sum())
                mel = decoder.decode_batch(codes)
                for i in range(len(b["keys"])):
                    n = int(mask[i].sum())
                    waves.append(gl_wave(mel[i, :, : 2 * n].numpy()))
        wer, _ = wer_of(waves, keys, meta)
        res[f"wer_t{temp}"] = wer
        res[f"lvl0_acc_t{temp}"] = acc0
    print(tag, json.dumps(res), flush=True)
    stage.train()


def evaluate(stage, decoder, eval_sets, meta, step, lip_weights, tag):
    """Evaluate every split of ``eval_sets`` at every lip guidance weight."""
    for lip in lip_weights:
        for split, batch_list in eval_sets:
            evaluate_split(stage, decoder, split, batch_list, meta, step, guidance_weights(lip), tag)


def main():
    """Load and re-encode the data, train (or load) the stages, evaluate."""
    args = parse_args()
    torch.manual_seed(0)
    # the loaders draw from torch's RNG: keep their order, or training starts from other weights
    train = batches("train", bs=args.bs)
    val = batches("val", audio=True)
    meta = metas("val")
    eval_sets = [("val", val)]
    if args.eval_train:
        eval_sets.append(("train", batches("train", audio=True)[:2]))
        meta.update(metas("train"))
    codec = ResidualCodec.fit(clip_mels(train), PARAMS.codec)
    train = [recode(b, codec) for b in train]
    for _, batch_list in eval_sets:
        batch_list[:] = [recode(b, codec) for b in batch_list]

    cfg = model_config("tiny", PARAMS)
    cfg = cfg.with_updates(style_dit={"dim": args.dim, "layers": args.layers, "c_lip_source": "ground_truth"},
                           face_style={"dim": args.dim})
    bert = build_stage("unit_bert", cfg)
    if not args.load:
        train_unit_bert(bert, train, args.bert_steps)
    refiner = build_stage("error_detector", cfg, {"unit_bert": bert})
    stage = build_stage("style_dit", cfg, {"refiner": refiner})
    decoder = ResidualCodebookDecoder(torch.from_numpy(codec.codebooks), 2)
    lip_weights = [float(x) for x in args.guidance.split(",")]

    if args.load:
        print("bert loaded", flush=True)
        stage.load_state_dict(torch.load(args.load))
        evaluate(stage, decoder, eval_sets, meta, 0, lip_weights, args.tag)
        return

    params = [p for p in stage.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    evals = {int(x) for x in args.evals.split(",")}
    t = time.time()
    for s in range(1, args.steps + 1):
        loss, metrics = stage.loss(train[s % len(train)])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s % 100 == 0:
            print(s, f"{time.time() - t:.0f}s", metrics, flush=True)
        if s in evals:
            evaluate(stage, decoder, eval_sets, meta, s, lip_weights, args.tag)
            if args.save:
                torch.save(stage.state_dict(), args.save)


if __name__ == "__main__":
    main()
