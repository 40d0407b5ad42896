"""Could SynthTalk's voices leave more room for a face to matter? A ladder of more distinct espeak-ng
variants, and what it costs the units (issue 13, ``no_id``).

For every espeak-ng en-us variant (robots, whisper, croak and the like left out):
- its GE2E voice (resemblyzer, the speaker judge) over 3 neutral sentences at one pitch and rate;
- the pocketsphinx + GRID grammar WER (the intelligibility judge) over 8 sentences, five emotions,
  three pitches.
Then, for a ladder (a set of variants): the **headroom** = how much nearer a clip is to its own
voice (its other sentences) than to the mean voice of the ladder's other variants: what a perfect
face → voice predictor could gain over ``no_id``'s average voice in the judge's space. And the
**unit distance**: MFCC k-means units (K=100, utterance CMVN: params.yaml's tokenizer) fitted on
the ladder's voices, the same 12 sentences in every voice, the mean normalised edit distance of the
deduplicated unit strings between every two voices: how much of the voice the units carry, i.e.
what the lips cannot tell the lip aligner.

    python results/scripts/voice_ladder.py
"""

import itertools
import json
import subprocess

import numpy as np
from common import PARAMS
from rapidfuzz.distance import Levenshtein

from imagintalk.eval.asr import grid_asr
from imagintalk.features.speaker import default_speaker_encoder
from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.face_voice import LADDER
from imagintalk.synth.grammar import sample_sentence
from imagintalk.synth.voice import EMOTION_PROSODY, speak
from imagintalk.tokenizers.units import UnitTokenizer

ODD = {"Demonic", "announcer", "whisper", "whisperf", "croak", "fast", "UniRobot", "anikaRobot"}
LADDERS = {
    "shipped (face_voice.LADDER)": list(LADDER),
    # 5 f + 7 distinct male variants that pocketsphinx still reads (per-variant WER <= 0.21)
    "wider": ["f1", "f2", "f3", "f4", "f5", "m2", "david", "sandro", "pablo", "edward", "adam", "victor"],
}


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def audio(sentence, variant, pitch=50, rate=150, emotion="neutral", intensity=0.0):
    return speak(sentence, EspeakVoice(f"en-us+{variant}", pitch=pitch, rate=rate), emotion, intensity, 16000).audio


def variants():
    lines = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout.splitlines()[1:]
    names = [ln.split()[4].split("/")[1] for ln in lines if ln.strip()]
    return [n for n in names if n not in ODD and "robosoft" not in n.lower()]


def headroom(emb, names):
    """emb: variant -> (clips, 256) unit GE2E; own-voice vs others'-mean-voice cosine."""
    means = {n: unit(emb[n].mean(0)) for n in names}
    own, avg = [], []
    for n in names:
        others = unit(np.mean([means[m] for m in names if m != n], 0))
        for c in range(len(emb[n])):
            own.append(emb[n][c] @ unit(np.delete(emb[n], c, 0).mean(0)))
            avg.append(emb[n][c] @ others)
    return float(np.mean(own)), float(np.mean(avg))


def unit_distance(names):
    rng, fit_rng = np.random.default_rng(3), np.random.default_rng(4)
    sents, fit_sents = [sample_sentence(rng) for _ in range(12)], [sample_sentence(fit_rng) for _ in range(8)]
    tok = UnitTokenizer.fit([audio(s, v) for v in names for s in fit_sents], PARAMS.tokenizer)

    def dedup(u):
        return [int(x) for i, x in enumerate(u) if i == 0 or x != u[i - 1]]

    units = {v: [dedup(tok.encode(audio(s, v))) for s in sents] for v in names}
    return float(np.mean([Levenshtein.distance(units[a][i], units[b][i]) / max(len(units[a][i]), len(units[b][i]))
                          for a, b in itertools.combinations(names, 2) for i in range(len(sents))]))


def main():
    enc, asr, emotions = default_speaker_encoder(), grid_asr(), sorted(EMOTION_PROSODY)
    emb, wer = {}, {}
    for n in variants():
        rng = np.random.default_rng(7)
        emb[n] = unit(np.stack([enc.embed(audio(sample_sentence(rng), n)) for _ in range(3)]))
        rng = np.random.default_rng(11)
        refs, hyps = [], []
        for c in range(8):
            s = sample_sentence(rng)
            refs.append(s.transcript.lower())
            hyps.append(asr.transcribe(audio(s, n, pitch=(35, 50, 65)[c % 3], emotion=emotions[c % 5], intensity=0.8)))
        wer[n] = sum(Levenshtein.distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True)) / sum(
            len(r.split()) for r in refs)
    out = {"variants": len(emb), "wer": {n: round(w, 3) for n, w in wer.items()}}
    for name, names in {**LADDERS, f"all {len(emb)} variants": list(emb)}.items():
        own, avg = headroom(emb, names)
        row = {"own": round(own, 3), "mean_voice": round(avg, 3), "headroom": round(own - avg, 3),
               "wer": round(float(np.mean([wer[n] for n in names])), 3)}
        if name in LADDERS:
            row["unit_distance"] = round(unit_distance(names), 3)
        out[name] = row
        print(name, row, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
