"""Classifier-free guidance on the face conditions, chosen on the validation speakers (issue 13).

Evaluates the quality run's challenger on the val split (``evaluate --split val``: nothing is
tagged for the gate) with only the rows that decide it (full and no_emo), for each
(guidance_id, guidance_emo) given; prints one JSON line per setting. Run from the quality run's
checkout (its MLflow store and shards are relative paths):

    cd /tmp/cq && python /work/main/results/scripts/guidance_val.py 0,0 0,1.5 1,1.5
"""

import json
import sys

from imagintalk.config import load_params
from pipelines.evaluate import evaluate_model

KEEP = ("wer", "uer", "speaker_sim", "emotion_acc", "dnsmos_p808")


def main() -> None:
    params = load_params().for_corpus("synthtalk_large")
    for setting in sys.argv[1:]:
        gid, gemo = (float(x) for x in setting.split(","))
        ecfg = params.eval.model_copy(update={"ladder": [], "ablations": ["no_emo"],
                                              "guidance_id": gid, "guidance_emo": gemo})
        result = evaluate_model("models:/imagintalk@challenger", "datasets/synthtalk_large/shards",
                                params.model_copy(update={"eval": ecfg}), split="val")
        rows = {v: {k: round(x, 4) for k, x in row.items() if k in KEEP} for v, row in result.rows.items()}
        print(json.dumps({"guidance_id": gid, "guidance_emo": gemo, "n_clips": result.n_clips, "rows": rows}),
              flush=True)


if __name__ == "__main__":
    main()
