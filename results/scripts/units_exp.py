"""Units: speaker dependence of k-means units over MFCC+delta+delta-delta features (results/README.md).

For each feature normalisation and K, fits MiniBatchKMeans on the train speakers and prints the
normalised mutual information between unit and speaker over the unseen val+test speakers: a
speaker-independent unit is spread evenly over the speakers, so lower is better.
"""

import argparse

import numpy as np
from common import PARAMS, batches
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import normalized_mutual_info_score

from imagintalk.tokenizers.extractors import MfccExtractor


def parse_args():
    """Command line: normalisations and K values."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--norms", default=",".join(NORMS), help=f"comma list of {', '.join(NORMS)}")
    ap.add_argument("--ks", default="50,200", help="comma list of k-means sizes")
    return ap.parse_args()


def features(split, extractor):
    """(speaker, frames x features) of every clip of ``split``."""
    out = []
    for b in batches(split, audio=True):
        for i, key in enumerate(b["keys"]):
            audio = b["audio"][i, : int(b["audio_mask"][i].sum())].numpy()
            out.append((key.split("/")[1], extractor(audio).T))
    return out


def cmvn(f, var=True):
    """Per-utterance mean (and variance) normalisation."""
    mean = f.mean(0, keepdims=True)
    std = f.std(0, keepdims=True) + 1e-5
    return (f - mean) / std if var else f - mean


def spk_cmvn(data, var=True):
    """Per-speaker mean and variance normalisation (oracle speaker labels)."""
    by_speaker = {}
    for spk, f in data:
        by_speaker.setdefault(spk, []).append(f)
    stats = {s: (np.concatenate(v).mean(0), np.concatenate(v).std(0) + 1e-5) for s, v in by_speaker.items()}
    return [(s, (f - stats[s][0]) / (stats[s][1] if var else 1)) for s, f in data]


NORMS = {
    "raw": lambda d: d,
    "utt_cmn": lambda d: [(s, cmvn(f, False)) for s, f in d],
    "utt_cmvn": lambda d: [(s, cmvn(f)) for s, f in d],
    "spk_cmvn": spk_cmvn,
}


def main():
    """Print NMI(unit; speaker) on val+test for each normalisation and K."""
    args = parse_args()
    extractor = MfccExtractor(PARAMS.audio)
    train = features("train", extractor)
    held_out = features("val", extractor) + features("test", extractor)
    for name in args.norms.split(","):
        norm = NORMS[name]
        a, b = norm(train), norm(held_out)
        x_train = np.concatenate([f for _, f in a])
        x_held = np.concatenate([f for _, f in b])
        speakers = np.concatenate([[s] * len(f) for s, f in b])
        for k in (int(x) for x in args.ks.split(",")):
            km = MiniBatchKMeans(k, random_state=0, batch_size=4096, n_init=1, max_iter=100).fit(x_train)
            units = km.predict(x_held)
            nmi = normalized_mutual_info_score(speakers, units)
            print(name, k, f"NMI(unit;speaker) val+test {nmi:.4f}", flush=True)


if __name__ == "__main__":
    main()
