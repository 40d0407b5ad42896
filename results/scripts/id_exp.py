"""Voice from the face, in process: the style-DiT trained from ground-truth units with c_id from
the face end to end (``id_source=face``) or through the voice bottleneck (``id_source=voice``),
scored on the validation speakers by the speaker similarity (GE2E cosine against the clip's real
audio, ``speaker.npy``) of Griffin-Lim audio of the sampled codes, with c_id and without it
(``no_id``: the DiT's null identity). The gap full − no_id is issue 13's target (≥ 0.05). With the
voice bottleneck, ``oracle_voice`` reads c_id from the clip's own real-audio GE2E embedding: how
well the DiT renders a voice it is told exactly.

    SHARDS=datasets/synthtalk_large/shards python results/scripts/id_exp.py --source voice --steps 1500
"""

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from common import PARAMS, SHARDS, batches, fit, gl_wave, teacher_style_stage

from imagintalk.features.speaker import speaker_embedding
from imagintalk.models.batch import frame_mask
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.tokenizers.locate import find_codec
from imagintalk.train.loop import moving_average


def similarity(stage, decoder, val, drop_id, guidance_id=0.0, oracle=False):
    """Mean speaker similarity on ``val``; ``oracle`` (voice bottleneck only): c_id from the clip's
    own ground-truth GE2E embedding, i.e. a perfect face → voice predictor."""
    sims = []
    stage.eval()
    with torch.no_grad():
        for b in val:
            c_lip, mask = stage.refiner.teacher_c_lip(b)
            emotion = stage.expression.label_batch(b).probs
            style = stage.face_style(b["identity"], b["face"], emotion, frame_mask(b))
            c_id = style.c_id
            if oracle:
                c_id = stage.face_style.voice_condition(F.normalize(b["speaker"].float(), dim=-1))
            codes = stage.dit.sample(mask, c_lip, None if drop_id else c_id, style.c_emo[:, : mask.shape[1]],
                                     style.emo_known, steps=16, generator=torch.Generator().manual_seed(0),
                                     temperature=0.0, guidance={"lip": 0.0, "id": guidance_id, "emo": 0.0})
            mel = decoder.decode_batch(codes)
            for i in range(len(b["keys"])):
                n = int(mask[i].sum())
                e = speaker_embedding(gl_wave(mel[i, :, : 2 * n].numpy()))
                ref = b["speaker"][i].numpy()
                sims.append(float(e @ ref / (np.linalg.norm(e) * np.linalg.norm(ref) + 1e-9)))
    stage.train()
    return float(np.mean(sims))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="face", choices=("face", "voice"))
    ap.add_argument("--teacher", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--evals", default="750,1500")
    ap.add_argument("--bert-steps", type=int, default=300)
    ap.add_argument("--ema", type=float, default=0.0, help="also score an EMA of the weights with this decay")
    ap.add_argument("--guidance-id", default="0", help="comma list of c_id guidance weights to score")
    args = ap.parse_args()
    torch.manual_seed(0)
    train, val = batches("train", train=True), batches("val")  # shuffled: see emo_exp.py
    codec = find_codec(SHARDS, None, PARAMS)
    decoder = ResidualCodebookDecoder.from_codec(codec)
    cfg = model_config("tiny", PARAMS).with_updates(
        style_dit={"c_lip_source": "ground_truth"},
        face_style={"id_source": args.source, "voice_teacher": args.teacher})
    stage = teacher_style_stage(cfg, train, args.bert_steps)
    evals = {int(x) for x in args.evals.split(",")}
    ema = moving_average(stage, args.ema)

    def after_step(s):
        if ema is not None:
            ema.update_parameters(stage)
        if s not in evals:
            return
        for name, m in (("last", stage), ("ema", ema.module if ema is not None else None)):
            if m is None:
                continue
            res = {"source": args.source, "teacher": args.teacher, "step": s, "weights": name,
                   "no_id": similarity(m, decoder, val, True)}
            for g in (float(x) for x in args.guidance_id.split(",")):
                res[f"full_g{g}"] = similarity(m, decoder, val, False, g)
            if args.source == "voice":
                res["oracle_voice"] = similarity(m, decoder, val, False, oracle=True)
            print(json.dumps(res), flush=True)

    fit(stage, train, args.steps, after_step=after_step)


if __name__ == "__main__":
    main()
