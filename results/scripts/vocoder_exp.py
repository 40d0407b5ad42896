"""Does the vocoder keep the emotion? The vocoder stage trained in process on the train clips'
decoded codec tokens (as the pipeline trains it), then the validation clips' ground-truth codes are
vocoded and read by the evaluation's speech-emotion judge (fitted on every train clip's real audio).
Beside it: the real audio and Griffin-Lim of the same decoded codes. The resynthesis rung of
`evaluate` is this vocoder's row on the test speakers.

    SHARDS=datasets/synthtalk_large/shards python results/scripts/vocoder_exp.py \
        --steps 1000 --dim 64 --intermediate 192 --layers 2
"""

import argparse
import json
import time

import numpy as np
import torch
from common import PARAMS, SHARDS, batches, clip_audio, fit, gl_wave

from imagintalk.emotions import EMOTIONS
from imagintalk.eval.emotion_judge import EmotionJudge, prosody_features
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.models.stages import build_stage
from imagintalk.tokenizers.locate import find_codec


def f0_stats(waves):
    """Mean log-F0 and log-F0 std (the judge's first two features) of each wave."""
    return np.stack([prosody_features(w)[:2] for w in waves])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    shipped = model_config("tiny", PARAMS).vocoder
    ap.add_argument("--dim", type=int, default=shipped.dim)
    ap.add_argument("--intermediate", type=int, default=shipped.intermediate)
    ap.add_argument("--layers", type=int, default=shipped.layers)
    ap.add_argument("--lr", type=float, default=PARAMS.train.lr)
    ap.add_argument("--adversarial", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    train, val = batches("train", audio=True), batches("val", audio=True)
    labels = lambda bl: [EMOTIONS[int(e)] for b in bl for e in b["emotion"]]  # noqa: E731
    judge = EmotionJudge.fit(clip_audio(train), labels(train))
    decoder = ResidualCodebookDecoder.from_codec(find_codec(SHARDS, None, PARAMS))
    cfg = model_config("tiny", PARAMS).with_updates(vocoder={
        "dim": args.dim, "intermediate": args.intermediate, "layers": args.layers, "adversarial": args.adversarial})
    stage = build_stage("vocoder", cfg, {"codec": decoder})
    t = time.time()
    fit(stage, train, args.steps, lr=args.lr, weight_decay=PARAMS.train.weight_decay,
        grad_clip=PARAMS.train.grad_clip)
    stage.eval()
    vocoded, griffin = [], []
    with torch.no_grad():
        for b in val:
            mel = stage.vocoder_input(b)
            n = mel_len(b)
            wave, lengths = stage.vocoder(mel, n)
            vocoded += [wave[i, : int(lengths[i])].numpy() for i in range(len(b["keys"]))]
            griffin += [gl_wave(mel[i, :, : int(n[i])].numpy()) for i in range(len(b["keys"]))]
    truth = clip_audio(val)
    f0 = {name: f0_stats(w) for name, w in (("truth", truth), ("vocoder", vocoded), ("griffin_lim", griffin))}
    res = {"args": vars(args), "train_s": round(time.time() - t),
           "emotion_acc": {name: judge.accuracy(w, labels(val))
                           for name, w in (("truth", truth), ("vocoder", vocoded), ("griffin_lim", griffin))},
           "logf0_mean_abs_err": {k: float(np.abs(v[:, 0] - f0["truth"][:, 0]).mean()) for k, v in f0.items()},
           "logf0_std_ratio": {k: float(v[:, 1].mean() / f0["truth"][:, 1].mean()) for k, v in f0.items()}}
    print(json.dumps(res), flush=True)


def mel_len(b):
    """Valid mel frames of each clip of a batch."""
    return b["mel_mask"].sum(1).long()


if __name__ == "__main__":
    main()
