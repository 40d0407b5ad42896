"""Which features should the speech-emotion judge read? Fit on ground-truth train audio, scored on
validation speakers through three channels: the ground truth, Griffin-Lim of its log-mel, and
Griffin-Lim of the codec's decoding of its codes (what a perfect style-DiT would emit). A judge
that reads emotion, not the channel, scores the three alike.

    SHARDS=datasets/synthtalk_large/shards python results/scripts/judge_exp.py
"""

import os

import numpy as np
from common import batches, clip_audio, gl_wave

from imagintalk.emotions import EMOTIONS
from imagintalk.eval.emotion_judge import prosody_features
from imagintalk.tokenizers.codec import ResidualCodec

# slices of prosody_features: F0 level/std/range, energy mean/std, voiced fraction, duration,
# 13 MFCC means, 13 MFCC stds
GROUPS = {"f0": [0, 1, 2], "energy": [3, 4], "voiced": [5], "dur": [6],
          "mfcc_mean": list(range(7, 20)), "mfcc_std": list(range(20, 33))}
VARIANTS = {
    "all (today)": ["f0", "energy", "voiced", "dur", "mfcc_mean", "mfcc_std"],
    "prosody": ["f0", "energy", "voiced", "dur"],
    "prosody+mfcc_std": ["f0", "energy", "voiced", "dur", "mfcc_std"],
    "f0+energy": ["f0", "energy"],
}


def labelled(batch_list):
    """(audio list, label list) of the clips that carry a label."""
    waves = clip_audio(batch_list)
    labels = [int(e) for b in batch_list for e in b["emotion"].tolist()]
    return [w for w, e in zip(waves, labels, strict=True) if e >= 0], [EMOTIONS[e] for e in labels if e >= 0]


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codec = ResidualCodec.load(os.environ.get("CODEC", "datasets/synthtalk_large/tokenizers/codec.npz"))
    train = batches("train", audio=True)
    tr_audio, tr_lab = labelled(train)
    Xtr = np.stack([prosody_features(a) for a in tr_audio])
    val = batches("val", audio=True)
    va_audio, va_lab = labelled(val)
    mels = [b["mel"][i, :, : int(b["mel_mask"][i].sum())].numpy() for b in val for i in range(len(b["keys"]))]
    codes = [b["codes"][i, :, : int(b["unit_mask"][i].sum())].numpy() for b in val for i in range(len(b["keys"]))]
    channels = {
        "ground truth": va_audio,
        "GL(mel)": [gl_wave(m) for m in mels],
        "GL(codec)": [gl_wave(codec.decode(c)) for c in codes],
    }
    feats = {ch: np.stack([prosody_features(a) for a in w]) for ch, w in channels.items()}
    print(f"train {len(tr_lab)} clips, val {len(va_lab)}")
    for n_train in (200, len(tr_lab)):
        for name, groups in VARIANTS.items():
            cols = [c for g in groups for c in GROUPS[g]]
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=0))
            clf.fit(Xtr[:n_train][:, cols], tr_lab[:n_train])
            accs = {ch: float(np.mean(clf.predict(X[:, cols]) == np.array(va_lab))) for ch, X in feats.items()}
            print(f"fit on {n_train:4d} | {name:18s} | " + " | ".join(f"{ch} {a:.3f}" for ch, a in accs.items()),
                  flush=True)


if __name__ == "__main__":
    main()
