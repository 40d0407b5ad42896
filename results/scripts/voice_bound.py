"""How much of the voice can a face predict, at best? In the speaker-similarity judge's space (GE2E
of the real audio, ``speaker.npy`` of each record), cosine of every validation / test clip to:
- the mean training voice (what ``no_id`` renders at best);
- its own speaker's mean voice over the speaker's other clips (a perfect face → voice predictor);
- the training speaker whose mean voice is closest (the best single training voice, an oracle pick);
- the mean voice of the k training speakers whose face descriptors are nearest (a face → voice
  predictor that uses nothing but the face).

    SHARDS=datasets/synthtalk_large/shards python results/scripts/voice_bound.py
"""

import json

import numpy as np
from common import batches


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def rows(split):
    """(speaker, face descriptor, GE2E embedding) of every clip of ``split``."""
    return [(k.split("/")[1], b["identity"][i].numpy(), b["speaker"][i].numpy())
            for b in batches(split, bs=16) for i, k in enumerate(b["keys"])]


def main():
    train = rows("train")
    speakers = sorted({r[0] for r in train})
    voice = unit(np.array([np.mean([unit(r[2]) for r in train if r[0] == s], 0) for s in speakers]))
    face = unit(np.array([np.mean([r[1] for r in train if r[0] == s], 0) for s in speakers]))
    mean_voice = unit(voice.mean(0))
    res = {}
    for split in ("val", "test"):
        clips = rows(split)
        spk = [r[0] for r in clips]
        y = unit(np.array([r[2] for r in clips]))
        x = np.array([r[1] for r in clips])
        own = [float(y[i] @ unit(y[[j for j, t in enumerate(spk) if t == s and j != i]].mean(0)))
               for i, s in enumerate(spk)]
        near = np.argsort(((x[:, None, :] - face[None]) ** 2).sum(-1), axis=1)
        res[split] = {"clips": len(clips), "mean_voice": float((y @ mean_voice).mean()),
                      "own_speaker": float(np.mean(own)), "best_training_voice": float((y @ voice.T).max(1).mean()),
                      **{f"face_knn_{k}": float((unit(voice[near[:, :k]].mean(1)) * y).sum(1).mean())
                         for k in (1, 3, 5, 10, 20)}}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
