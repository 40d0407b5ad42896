"""How much the style-DiT's speech follows its face conditions, in process: trained from
ground-truth units (teacher c_lip) with c_id from the face and c_emo from the clip's corpus label
(the emotion oracle: isolates the DiT's rendering from the expression model's reading), scored on
the validation speakers on Griffin-Lim audio of the sampled codes:
- speaker similarity (GE2E cosine to the real audio's ``speaker.npy``) with and without c_id;
- emotion accuracy of a prosody judge (imagintalk/eval/emotion_judge.py) fitted on Griffin-Lim
  audio of the train clips' ground-truth codes (the same domain), with and without c_emo, and on
  the validation clips' ground-truth codes (the ceiling).

    SHARDS=datasets/synthtalk_large/shards python results/scripts/cond_exp.py --cond-input --steps 2000
"""

import argparse
import json
import time

import numpy as np
import torch
from common import PARAMS, SHARDS, batches, gl_wave, metas, teacher_style_stage, wer_of

from imagintalk.emotions import EMOTIONS
from imagintalk.eval.emotion_judge import EmotionJudge
from imagintalk.features.speaker import speaker_embedding
from imagintalk.models.batch import frame_mask
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.tokenizers.locate import find_codec


def waves_of(decoder, codes, mask):
    mel = decoder.decode_batch(codes)
    return [gl_wave(mel[i, :, : 2 * int(mask[i].sum())].numpy()) for i in range(codes.shape[0])]


def generate(stage, decoder, val, drop=(), temperature=0.0, emotion="label"):
    """Griffin-Lim waves of the ``val`` clips from ground-truth units; ``drop``: conditions left to
    the DiT's null ("id", "emo"); ``emotion``: c_emo from the clip's corpus "label" (the oracle) or
    the stage's expression model reading the "face"."""
    out = []
    stage.eval()
    with torch.no_grad():
        for b in val:
            c_lip, mask = stage.refiner.teacher_c_lip(b)
            emo = stage.expression.label_batch(b).probs if emotion == "face" else b["emotion"]
            style = stage.face_style(b["identity"], b["face"], emo, frame_mask(b))
            n = mask.shape[1]
            codes = stage.dit.sample(mask, c_lip, None if "id" in drop else style.c_id,
                                     None if "emo" in drop else style.c_emo[:, :n], style.emo_known,
                                     steps=16, generator=torch.Generator().manual_seed(0), temperature=temperature)
            out += waves_of(decoder, codes, mask)
    stage.train()
    return out


def speaker_sim(waves, val):
    refs = [r.numpy() for b in val for r in b["speaker"]]
    sims = []
    for w, ref in zip(waves, refs, strict=True):
        e = speaker_embedding(w)
        sims.append(float(e @ ref / (np.linalg.norm(e) * np.linalg.norm(ref) + 1e-9)))
    return float(np.mean(sims))


def truth_waves(decoder, batch_list):
    out = []
    for b in batch_list:
        n = (frame_mask(b).sum(1) * 2).long()
        mask = torch.arange(b["codes"].shape[2])[None] < n[:, None]
        out += waves_of(decoder, b["codes"], mask)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cond-input", action="store_true")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--judge-clips", type=int, default=0, help="train clips the judge is fitted on (0: all)")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.0])
    ap.add_argument("--bert-steps", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(0)
    train, val = batches("train", train=True), batches("val")  # shuffled: see emo_exp.py
    labels = lambda bl: [EMOTIONS[int(e)] for b in bl for e in b["emotion"]]  # noqa: E731
    decoder = ResidualCodebookDecoder.from_codec(find_codec(SHARDS, None, PARAMS))
    judge_set = train[: args.judge_clips // 8] if args.judge_clips else train
    judge = EmotionJudge.fit(truth_waves(decoder, judge_set), labels(judge_set))
    ceiling = judge.accuracy(truth_waves(decoder, val), labels(val))
    print(json.dumps({"judge_clips": len(labels(judge_set)), "val_truth_gl_emotion_acc": ceiling}), flush=True)
    cfg = model_config("tiny", PARAMS).with_updates(style_dit={"c_lip_source": "ground_truth",
                                                               "cond_input": args.cond_input})
    stage = teacher_style_stage(cfg, train, args.bert_steps)
    params = [p for p in stage.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    order, t = np.random.default_rng(0), time.time()
    for s in range(1, args.steps + 1):
        b = train[int(order.integers(len(train)))]
        fmask = frame_mask(b)
        with torch.no_grad():
            c_lip, mask = stage.refiner.teacher_c_lip(b)
        style = stage.face_style(b["identity"], b["face"], b["emotion"], fmask, b.get("speaker"))
        n = mask.shape[1]
        loss, metrics = stage.dit.loss(b["codes"][:, :, :n], mask, c_lip, style.c_id, style.c_emo[:, :n],
                                       style.emo_known)
        aux, _ = stage.face_style.speaker_loss(style, b.get("speaker"))
        opt.zero_grad()
        (loss + aux).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s % 500 == 0:
            print(s, f"{time.time() - t:.0f}s", {k: round(v, 3) for k, v in metrics.items()}, flush=True)
    keys = [k for b in val for k in b["keys"]]
    meta = metas("val")
    for temperature in args.temperatures:
        full, no_id, no_emo = (generate(stage, decoder, val, d, temperature) for d in ((), ("id",), ("emo",)))
        res = {"cond_input": args.cond_input, "steps": args.steps, "temperature": temperature,
               "wer": wer_of(full, keys, meta)[0],
               "speaker_sim": {"full": speaker_sim(full, val), "no_id": speaker_sim(no_id, val)},
               "emotion_acc": {"full": judge.accuracy(full, labels(val)),
                               "no_emo": judge.accuracy(no_emo, labels(val)), "truth": ceiling}}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
