"""Does `speak --emotion` change the prosody, and does the speech-emotion judge hear the override?
Speaks unseen test clips with the face's own emotion and with each override, through the same
`Speaker` the CLI uses, and reports per override: the judge's accuracy against the override, and
the mean change of log-F0 level, log-F0 range and log-energy against the face's version (the
judge's own YIN/RMS statistics).

    MLFLOW_TRACKING_URI=sqlite:////tmp/cq/mlflow.db python results/scripts/override_exp.py \\
        --root /tmp/cq/datasets/synthtalk_large --clips 32
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imagintalk.config import load_params  # noqa: E402
from imagintalk.emotions import EMOTIONS  # noqa: E402
from imagintalk.eval.emotion_judge import prosody_features  # noqa: E402
from imagintalk.serve.inference import Speaker  # noqa: E402
from pipelines.evaluate import _train_emotion_judge  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="the corpus root (manifest.parquet, shards/)")
    ap.add_argument("--model", default="models:/imagintalk@challenger")
    ap.add_argument("--clips", type=int, default=32)
    args = ap.parse_args()
    import pandas as pd

    params = load_params().for_corpus("synthtalk_large")
    manifest = pd.read_parquet(Path(args.root) / "manifest.parquet")
    test = manifest[manifest.split == "test"].groupby("speaker").head(args.clips // 8 or 1).head(args.clips)
    paths = test.video_path.tolist()
    judge = _train_emotion_judge(str(Path(args.root) / "shards"), params)
    speaker = Speaker(args.model, params)
    emotions = [e for e in EMOTIONS if e in judge.labels]
    rows = {"face": [None] * len(paths), **{e: [e] * len(paths) for e in emotions}}
    audio = {name: speaker.speak_batch(paths, emotions=ov) for name, ov in rows.items()}
    ok = [all(isinstance(a[i], np.ndarray) for a in audio.values()) for i in range(len(paths))]
    refused = [f"{paths[i]}: {audio['face'][i]}" for i in range(len(paths)) if not ok[i]]
    audio = {name: [w for w, good in zip(waves, ok, strict=True) if good] for name, waves in audio.items()}
    test = test[ok]
    feats = {name: np.stack([prosody_features(a) for a in waves]) for name, waves in audio.items()}
    preds = {name: judge.predict(waves) for name, waves in audio.items()}
    out = {"clips": len(test), "refused": refused, "face_acc_vs_label": float(np.mean([p == t for p, t in zip(
        preds["face"], test.emotion.str.lower(), strict=True)]))}
    for e in emotions:
        d = feats[e] - feats["face"]
        out[e] = {"judge_follows": float(np.mean([p == e for p in preds[e]])),
                  "d_logf0": round(float(d[:, 0].mean()), 3), "d_logf0_range": round(float(d[:, 2].mean()), 3),
                  "d_log_energy": round(float(d[:, 3].mean()), 3)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
