"""Codec frame layout: stacked 50 Hz frame pairs vs the mean of each pair (results/README.md).

Fits the residual codec on the train clips under each layout and reports, on the val clips
(unseen speakers), the log-mel MSE and the Griffin-Lim WER at 1 and 8 levels, next to the WER
of the ground-truth audio and of the ground-truth mel through Griffin-Lim.
"""

import argparse
import time

import numpy as np
from common import PARAMS, batches, clip_audio, clip_keys, clip_mels, gl_wave, metas, wer_of

import imagintalk.tokenizers.codec as codec_module
from imagintalk.features.audio import frames_50hz, upsample_100hz
from imagintalk.tokenizers.codec import ResidualCodec


def parse_args():
    """Command line: layouts and levels."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default="pairs,mean", help="comma list of pairs (current) and mean (old)")
    ap.add_argument("--levels", default="1,8", help="comma list of codec levels to decode with")
    return ap.parse_args()


def use_mean_layout():
    """Make the codec fit and decode the mean of each frame pair, upsampled x2 (the old layout)."""
    codec_module._frames = lambda mel: frames_50hz(np.asarray(mel, np.float32)).T
    codec_module.unstack_pairs = upsample_100hz


def main():
    """Print the ground-truth WERs, then MSE and WER per layout and level."""
    args = parse_args()
    train = batches("train")
    val = batches("val", audio=True)
    meta = metas("val")
    mels_train, mels_val = clip_mels(train), clip_mels(val)
    keys = clip_keys(val)
    wer, _ = wer_of(clip_audio(val), keys, meta)
    print("GT audio WER", wer)
    wer, _ = wer_of([gl_wave(m) for m in mels_val], keys, meta)
    print("GT mel GL WER", wer)
    for layout in args.layouts.split(","):
        if layout == "mean":
            use_mean_layout()
        t = time.time()
        codec = ResidualCodec.fit(mels_train, PARAMS.codec)
        fit_s = time.time() - t
        report = codec.reconstruction_report(mels_val)
        for levels in (int(x) for x in args.levels.split(",")):
            decoded = [codec.decode(codec.encode(m), levels) for m in mels_val]
            wer, _ = wer_of([gl_wave(d) for d in decoded], keys, meta)
            line = f"fit {fit_s:.1f}s levels {levels}: val mse {report[levels]:.3f} GL WER {wer:.3f}"
            print(layout, line, flush=True)


if __name__ == "__main__":
    main()
