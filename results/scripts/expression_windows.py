"""Expression from landmarks, with scikit-learn on 0.5 s windows: how far the window alone and the
window plus its clip's mean carry to unseen speakers (results/README.md, "Expression").

Features of a window: the mean of its 13 frames' 136 landmark coordinates (``wm``), optionally the
mean over the whole clip (``cm``). Fitted on the train split, scored on val and test speakers.

    python results/scripts/expression_windows.py /tmp/exp/lm.pkl   # (dump_landmarks.py output)
"""

import pickle
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

WINDOW = 13


def features(rows, kinds):
    x, y = [], []
    for _key, lm, found, emotion in rows:
        lm = lm.astype(np.float64)
        seen = found.astype(bool) & np.isfinite(lm).all(1)
        if emotion < 0 or seen.sum() < 5:
            continue
        clip_mean = lm[seen].mean(0)
        for s in range(0, len(lm), WINDOW):
            m = seen[s:s + WINDOW]
            if m.any():
                parts = {"wm": lm[s:s + WINDOW][m].mean(0), "cm": clip_mean}
                x.append(np.concatenate([parts[k] for k in kinds]))
                y.append(emotion)
    return np.array(x), np.array(y)


def main():
    with open(sys.argv[1], "rb") as f:
        data = pickle.load(f)
    for kinds in (("wm",), ("wm", "cm")):
        (xtr, ytr), (xva, yva), (xte, yte) = (features(data[s], kinds) for s in ("train", "val", "test"))
        models = {"logistic C=1": LogisticRegression(C=1.0, max_iter=5000),
                  "mlp 64 alpha=1": MLPClassifier((64,), alpha=1.0, max_iter=500, random_state=0),
                  "mlp 128 alpha=1": MLPClassifier((128,), alpha=1.0, max_iter=500, random_state=0)}
        for name, model in models.items():
            clf = make_pipeline(StandardScaler(), model).fit(xtr, ytr)
            print(f"{'+'.join(kinds):6s} {name:16s} train {clf.score(xtr, ytr):.3f} val {clf.score(xva, yva):.3f} "
                  f"test {clf.score(xte, yte):.3f}", flush=True)


if __name__ == "__main__":
    main()
