"""How much emotion does the codec keep? Residual k-means codecs fitted on the train clips' log-mels
(as fit_codec does) at more levels / larger codebooks; the validation clips' mels are quantised,
decoded, rendered by Griffin-Lim and read by the evaluation's speech-emotion judge (fitted on every
train clip's real audio). Beside them: the real audio and Griffin-Lim of the unquantised mel.
Residual levels are nested, so one 16-level fit gives every level count up to 16. ``--held-out N``
also reads the last N train speakers' clips, the judge then fitted on the other train speakers.

    SHARDS=datasets/synthtalk_large/shards python results/scripts/codec_emotion_exp.py
"""

import argparse
import json

import numpy as np
from common import PARAMS, batches, clip_audio, clip_keys, clip_mels, gl_wave

from imagintalk.emotions import EMOTIONS
from imagintalk.eval.emotion_judge import EmotionJudge
from imagintalk.tokenizers.codec import ResidualCodec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--held-out", type=int, default=0, help="train speakers the judge is not fitted on, read too")
    ap.add_argument("--variants", default="256x16:8,12,16;1024x8:8", help="size x levels: levels read; ...")
    args = ap.parse_args()
    train, val = batches("train", audio=True), batches("val", audio=True)
    labels = lambda bl: [EMOTIONS[int(e)] for b in bl for e in b["emotion"]]  # noqa: E731
    train_mels = clip_mels(train)
    if args.held_out:  # more clips to read than the 64 validation ones: the judge is fitted on
        # the first train speakers only and also reads the last ``held_out`` train speakers' clips
        speakers = sorted({k.split("/")[1] for k in clip_keys(train)})
        held = set(speakers[-args.held_out:])
        keep = [k.split("/")[1] not in held for k in clip_keys(train)]
        audio, y_train, mels = clip_audio(train), labels(train), train_mels
        judge = EmotionJudge.fit([a for a, k in zip(audio, keep, strict=True) if k],
                                 [e for e, k in zip(y_train, keep, strict=True) if k])
        y = labels(val) + [e for e, k in zip(y_train, keep, strict=True) if not k]
        truth = clip_audio(val) + [a for a, k in zip(audio, keep, strict=True) if not k]
        val_mels = clip_mels(val) + [m for m, k in zip(mels, keep, strict=True) if not k]
    else:
        judge = EmotionJudge.fit(clip_audio(train), labels(train))
        y, truth, val_mels = labels(val), clip_audio(val), clip_mels(val)
    res = {"clips": len(y), "truth": judge.accuracy(truth, y),
           "griffin_lim_of_mel": judge.accuracy([gl_wave(m) for m in val_mels], y)}
    print(json.dumps(res), flush=True)
    for variant in args.variants.split(";"):
        shape, reads = variant.split(":")
        size, levels = (int(x) for x in shape.split("x"))
        reads = [int(x) for x in reads.split(",")]
        cfg = PARAMS.codec.model_copy(update={"levels": levels, "codebook_size": size})
        codec = ResidualCodec.fit(train_mels, cfg)
        for n in reads:
            waves, mse = [], []
            for m in val_mels:
                m = m[:, : 2 * (m.shape[1] // 2)]
                dec = codec.decode(codec.encode(m), n)
                mse.append(float(((dec - m) ** 2).mean()))
                waves.append(gl_wave(dec))
            res[f"codec_{n}x{size}"] = {"emotion_acc": judge.accuracy(waves, y), "mel_mse": float(np.mean(mse))}
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
