"""Every clip's stored face landmarks, face_found flags and emotion label, per split, in one pickle
(the input of ``expression_windows.py`` and ``expression_torch.py``).

    SHARDS=/tmp/q2/datasets/synthtalk_large/shards python results/scripts/dump_landmarks.py /tmp/exp/lm2.pkl
"""

import pickle
import sys

from common import batches

out = {}
for split in ("train", "val", "test"):
    rows = []
    for b in batches(split, bs=16):
        for i, key in enumerate(b["keys"]):
            n = int(b["lip_mask"][i].sum())
            rows.append((key, b["landmarks"][i, :n].numpy(), b["face_found"][i, :n].numpy(), int(b["emotion"][i])))
    out[split] = rows
    print(split, len(rows), flush=True)
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
