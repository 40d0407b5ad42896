"""How much of the aligner's unit error is between neighbouring centroids (issue 12, "K").

Loads a trained model (``$MODEL``, default the quality run's, K=200) and its unit tokenizer
(``$TOKENIZER``), merges the K centroids into k groups by k-means over the centroids, and scores
the aligner on the validation split of ``$SHARDS`` with targets and predictions mapped to groups
(prediction: argmax of the group-summed probabilities). An estimate of what an aligner trained on
k units would reach, without training one per k.

    SHARDS=/tmp/cc/datasets/synthtalk_large/shards python results/scripts/units_merge_exp.py
"""

import os

import numpy as np
import torch
from common import batches
from sklearn.cluster import KMeans

from imagintalk.eval.metrics import unit_error_rate
from imagintalk.models.batch import frame_mask, token_mask
from imagintalk.models.imagintalk import ImaginTalk

MODEL = os.environ.get("MODEL", "/tmp/cc/artifacts/synthtalk_large/models/imagintalk_model")
TOKENIZER = os.environ.get("TOKENIZER", "/tmp/cc/datasets/synthtalk_large/tokenizers/unit_tokenizer.npz")


@torch.no_grad()
def main():
    centroids = np.load(TOKENIZER)["centroids"]
    k_full = len(centroids)
    model = ImaginTalk.load(MODEL)
    rows = []
    for b in batches("val", bs=16):
        al = model.refiner.aligner(b["lips"], frame_mask(b))
        mask = al.mask & token_mask(b)[:, : al.mask.shape[1]]
        rows.append((mask, b["units"][:, : mask.shape[1]].long(), al.logits.softmax(-1)))
    for k in (k_full, 100, 50, 25):
        groups = np.arange(k_full) if k == k_full else KMeans(k, n_init=4, random_state=0).fit_predict(centroids)
        to_group = torch.zeros(k_full, k)
        to_group[torch.arange(k_full), torch.as_tensor(groups)] = 1
        errors = n = frame_errors = 0
        for mask, target, probs in rows:
            pred = (probs @ to_group).argmax(-1)
            tgt = torch.as_tensor(groups)[target.clamp(0, k_full - 1)]
            for i in range(len(mask)):
                ref, hyp = tgt[i][mask[i]].numpy(), pred[i][mask[i]].numpy()
                errors += unit_error_rate(ref, hyp) * len(ref)
                frame_errors += int((ref != hyp).sum())
                n += len(ref)
        print(f"k={k} UER {errors / n:.3f} frame error {frame_errors / n:.3f}", flush=True)


if __name__ == "__main__":
    main()
