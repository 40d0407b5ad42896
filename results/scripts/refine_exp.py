"""Refinement rules of the error detector on validation speakers (issue 12, "unit error rate").

Loads a trained ImaginTalk model directory (``$MODEL``, default the quality run's) and the
validation split of ``$SHARDS``; runs ``LipRefiner.refine`` with each decision rule (``replace``:
the BERT's argmax; ``fuse``: argmax of aligner + BERT log-probabilities), round count and
threshold. Prints one JSON line per rule:
UER (Levenshtein over the reference length, as ``evaluate``), the fraction of units flagged and
the detector's ROC AUC on "aligner wrong".

    SHARDS=/tmp/cc/datasets/synthtalk_large/shards python results/scripts/refine_exp.py
"""

import json
import os
import sys

import numpy as np
import torch
from common import batches

from imagintalk.eval.metrics import unit_error_rate
from imagintalk.models.batch import frame_mask, token_mask
from imagintalk.models.imagintalk import ImaginTalk

MODEL = os.environ.get("MODEL", "/tmp/cc/artifacts/synthtalk_large/models/imagintalk_model")
SPLIT = sys.argv[1] if len(sys.argv) > 1 else "val"


def auc(scores, labels):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / max(pos * neg, 1))


@torch.no_grad()
def main():
    model = ImaginTalk.load(MODEL)
    ref = model.refiner
    rows = []
    for b in batches(SPLIT, bs=16):
        al = ref.aligner(b["lips"], frame_mask(b))
        mask = al.mask & token_mask(b)[:, : al.mask.shape[1]]
        target = b["units"][:, : mask.shape[1]].long()
        pred = al.logits.argmax(-1)
        prob = torch.sigmoid(ref.detector(al.features, pred, al.mask))
        rows.append(dict(mask=mask, target=target, pred=pred, prob=prob, lips=b["lips"], lip_mask=frame_mask(b)))
    wrong = np.concatenate([((r["pred"] != r["target"]) & r["mask"])[r["mask"]].numpy() for r in rows])
    scores = np.concatenate([r["prob"][r["mask"]].numpy() for r in rows])
    print(json.dumps({"split": SPLIT, "frames": int(len(wrong)), "aligner_frame_err": float(wrong.mean()),
                      "detector_auc": auc(scores, wrong), "mean_prob": float(scores.mean())}))

    def uer(units_of):
        errs, n = 0.0, 0
        for r in rows:
            units = units_of(r)
            for i in range(units.shape[0]):
                m = r["mask"][i]
                ref_u = r["target"][i][m].numpy()
                errs += unit_error_rate(ref_u, units[i][m].numpy()) * len(ref_u)
                n += len(ref_u)
        return errs / n

    print(json.dumps({"rule": "no_refinement", "uer": uer(lambda r: r["pred"])}))

    for decision in ("replace", "fuse"):
        ref.cfg = ref.cfg.model_copy(update={"decision": decision})
        for rounds in (1, 2):
            for thr in (0.5, 0.6, 0.7, 0.8, 0.9):
                outs = [ref.refine(r["lips"], r["lip_mask"], rounds=rounds, threshold=thr).units for r in rows]
                it = iter(outs)
                flagged = np.concatenate([(r["prob"] > thr)[r["mask"]].numpy() for r in rows])
                print(json.dumps({"decision": decision, "rounds": rounds, "threshold": thr,
                                  "flagged": float(flagged.mean()),
                                  "precision": float(wrong[flagged].mean()) if flagged.any() else None,
                                  "uer": uer(lambda r, it=it: next(it))}), flush=True)

if __name__ == "__main__":
    main()
