"""Does the voice teacher leak the clip's emotion? The voice path's teacher is each clip's own GE2E
embedding (``speaker.npy``). A logistic regression fitted on the train clips reads the emotion
label from it on the validation clips: from the clip's own embedding, from the embedding minus
its speaker's mean (what varies clip to clip), and from the speaker's mean alone (no per-clip
information: chance level).

    SHARDS=datasets/synthtalk_large/shards python results/scripts/ge2e_emotion.py
"""

import json

import numpy as np
from common import batches
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def rows(split):
    """(speaker, unit GE2E embedding, emotion id) of every clip of ``split``."""
    out = []
    for b in batches(split, bs=16):
        for i, k in enumerate(b["keys"]):
            e = b["speaker"][i].numpy()
            out.append((k.split("/")[1], e / np.linalg.norm(e), int(b["emotion"][i])))
    return out


def views(clips):
    """The three inputs of each clip: own embedding, own minus speaker mean, speaker mean."""
    by = {}
    for s, e, _ in clips:
        by.setdefault(s, []).append(e)
    mean = {s: np.mean(v, 0) for s, v in by.items()}
    own = np.array([e for _, e, _ in clips])
    spk = np.array([mean[s] for s, _, _ in clips])
    return {"own": own, "own_minus_speaker_mean": own - spk, "speaker_mean": spk}


def main():
    train, val = rows("train"), rows("val")
    ytr, yva = [c[2] for c in train], [c[2] for c in val]
    vtr, vva = views(train), views(val)
    res = {"val_clips": len(val), "chance": float(np.bincount(yva).max() / len(yva))}
    for name in vtr:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(vtr[name], ytr)
        res[name] = float(clf.score(vva[name], yva))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
