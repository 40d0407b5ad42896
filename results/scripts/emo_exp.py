"""c_emo from the face, sharpened or not: the expression stage's model and a style-DiT (from
ground-truth units) trained in process as the pipeline trains them (the DiT reads the expression
model's per-frame probabilities of the train faces), then scored on the validation speakers with
Griffin-Lim audio of the sampled codes by a prosody judge fitted on Griffin-Lim of every train
clip's true codes (cond_exp.py's judge):
- the face's reading at each ``--temperatures`` value of ``face_style.emotion_temperature``
  (inference only: the DiT was trained at ``--train-temperature``);
- the clip's corpus label (the oracle) and no emotion (``no_emo``).

    SHARDS=datasets/synthtalk_large/shards python results/scripts/emo_exp.py --steps 2000 --temperatures 1 0.5 0
"""

import argparse
import json
import time

import torch
from common import PARAMS, SHARDS, batches, fit, teacher_style_stage
from cond_exp import generate, truth_waves

from imagintalk.emotions import EMOTIONS
from imagintalk.eval.emotion_judge import EmotionJudge
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.models.expression import ExpressionModel, ExpressionScore
from imagintalk.tokenizers.locate import find_codec
from imagintalk.train.loop import moving_average


def train_expression(cfg, train, val, steps, ema_decay):
    """The expression model as the quality run trains it (AdamW lr 1e-3, EMA of the weights)."""
    model = ExpressionModel(cfg)
    ema = moving_average(model, ema_decay)
    fit(model, train, steps, after_step=lambda _: ema.update_parameters(model), log_every=0)
    model = ema.module.eval()
    score = ExpressionScore(model)
    for b in val:
        score.add(b)
    return model, score.result()["expression_acc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--expression-steps", type=int, default=3000)
    ap.add_argument("--train-temperature", type=float, default=1.0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.5, 0.0])
    ap.add_argument("--bert-steps", type=int, default=300)
    ap.add_argument("--judge-batches", type=int, default=0, help="train batches the judge is fitted on (0: all)")
    args = ap.parse_args()
    torch.manual_seed(0)
    # shuffled batches: the expression model standardises its input with BatchNorm, and a batch of
    # consecutive clips (two speakers) teaches it per-speaker statistics it lacks at inference
    train, val = batches("train", train=True), batches("val")
    labels = [EMOTIONS[int(e)] for b in val for e in b["emotion"]]
    decoder = ResidualCodebookDecoder.from_codec(find_codec(SHARDS, None, PARAMS))
    judge_set = train[: args.judge_batches] if args.judge_batches else train
    judge_labels = [EMOTIONS[int(e)] for b in judge_set for e in b["emotion"]]
    judge = EmotionJudge.fit(truth_waves(decoder, judge_set), judge_labels)
    cfg = model_config("tiny", PARAMS).with_updates(
        style_dit={"c_lip_source": "ground_truth"}, face_style={"emotion_temperature": args.train_temperature})
    t = time.time()
    expression, acc = train_expression(cfg, batches("train", train=True, bs=16), val, args.expression_steps, 0.995)
    print(json.dumps({"expression_val_window_acc": acc, "s": round(time.time() - t)}), flush=True)
    stage = teacher_style_stage(cfg, train, args.bert_steps, expression)
    fit(stage, train, args.steps, log_every=500)
    res = {"train_temperature": args.train_temperature, "steps": args.steps,
           "truth": judge.accuracy(truth_waves(decoder, val), labels),
           "label": judge.accuracy(generate(stage, decoder, val), labels),
           "no_emo": judge.accuracy(generate(stage, decoder, val, drop=("emo",)), labels)}
    for temp in args.temperatures:
        stage.face_style.emotion_temperature = temp  # inference only: the DiT is trained
        res[f"face_T{temp}"] = judge.accuracy(generate(stage, decoder, val, emotion="face"), labels)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
