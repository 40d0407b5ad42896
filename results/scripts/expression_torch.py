"""The expression stage's own torch model on the dumped landmarks (``dump_landmarks.py``), trained
as the stage trains it (AdamW, 16 clips a step, constant lr after warm-up, grad clip 1), scored as
``evaluate`` scores it (0.5 s window accuracy): quick variants of ExpressionConfig chosen on the
validation speakers (results/README.md, "Expression").

    python results/scripts/expression_torch.py /tmp/exp/lm.pkl context=window,steps=2000 context=clip
"""

import json
import pickle
import sys

import numpy as np
import torch

from imagintalk.config import load_params
from imagintalk.models.config import model_config
from imagintalk.models.expression import ExpressionModel, ExpressionScore
from imagintalk.train.loop import moving_average

torch.set_num_threads(1)


def batch(rows):
    t = max(len(r[1]) for r in rows)
    lm = np.zeros((len(rows), t, 136), np.float32)
    found, mask = np.zeros((len(rows), t), bool), np.zeros((len(rows), t), bool)
    for i, (_key, land, fo, _e) in enumerate(rows):
        n = len(land)
        ok = fo.astype(bool) & np.isfinite(land.astype(np.float32)).all(1)
        lm[i, :n] = np.where(ok[:, None], np.nan_to_num(land.astype(np.float32)), 0)
        found[i, :n], mask[i, :n] = ok, True
    return {"landmarks": torch.tensor(lm), "face_found": torch.tensor(found), "lip_mask": torch.tensor(mask),
            "emotion": torch.tensor([r[3] for r in rows])}


def score(model, rows):
    model.eval()
    s = ExpressionScore(model)
    for i in range(0, len(rows), 16):
        s.add(batch(rows[i:i + 16]))
    return round(s.result()["expression_acc"], 3)


def run(data, spec):
    opts = dict(kv.split("=") for kv in spec.split(",") if kv)
    train = {k: float(opts.pop(k, d)) for k, d in (("steps", 2000), ("lr", 1e-3), ("wd", 0.01), ("bs", 16),
                                                  ("ema", 0))}
    base = model_config("tiny", load_params())
    fields = {k: type(getattr(base.expression, k))(v) for k, v in opts.items()}
    cfg = base.model_copy(update={"expression": base.expression.model_copy(update=fields)})
    torch.manual_seed(0)
    model = ExpressionModel(cfg)
    ema = moving_average(model, train["ema"])
    opt = torch.optim.AdamW(model.parameters(), lr=train["lr"], weight_decay=train["wd"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    rng, rows, curve = np.random.default_rng(0), data["train"], []
    steps = int(train["steps"])
    for step in range(1, steps + 1):
        model.train()
        idx = rng.choice(len(rows), int(train["bs"]), replace=False)
        loss, _ = model.loss(batch([rows[i] for i in idx]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        if step % (steps // 4) == 0:
            m = ema.module if ema is not None else model
            curve.append((step, score(m, data["val"]), score(m, data["test"])))
    print(json.dumps({"spec": spec, "curve(step,val,test)": curve}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        lm = pickle.load(f)
    for s in sys.argv[2:]:
        run(lm, s)
