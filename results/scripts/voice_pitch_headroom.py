"""Does a wider pitch range widen the room a face has over an average voice? SynthTalk speakers
(face recipes 0..N-1) with their face-implied voice (``face_voice.voice_of_face``), C sentences each
in rotating emotions; GE2E headroom = cosine to the speaker's own voice (its other clips) minus
cosine to the mean voice of the other speakers. The shipped mapping (pitch 35-65) against pitch
10-90 (and espeak's intonation range from liveliness).

    python results/scripts/voice_pitch_headroom.py 40 4
"""
import sys

import numpy as np
from common import PARAMS  # noqa: F401  (repository root on sys.path)

from imagintalk.features.speaker import default_speaker_encoder
from imagintalk.synth import face_voice as fv
from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.grammar import sample_sentence
from imagintalk.synth.identity import identity_recipe
from imagintalk.synth.voice import EMOTION_PROSODY, speak

N, C = int(sys.argv[1]), int(sys.argv[2])
enc = default_speaker_encoder()
emos = sorted(EMOTION_PROSODY)

def wide(recipe, pr=(10, 90), rr=(20, 80)):
    t = fv.face_traits(recipe)
    pitch = round(pr[1] - t["build"] * (pr[1] - pr[0]))
    rate = round(fv.RATE_RANGE[0] + t["lively"] * (fv.RATE_RANGE[1] - fv.RATE_RANGE[0]))
    rng_ = round(rr[0] + t["lively"] * (rr[1] - rr[0]))
    return EspeakVoice(variant=f"en-us+{fv.LADDER[fv.ladder_position(recipe)]}", pitch=pitch, rate=rate, range=rng_)

maps = {"current": fv.voice_of_face, "wide_pitch": lambda r: wide(r, rr=(50, 50)), "wide_pitch_range": wide}
def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
out = {}
for name, f in maps.items():
    emb = np.zeros((N, C, 256), np.float32)
    for s in range(N):
        v = f(identity_recipe(s))
        rng = np.random.default_rng(1000 + s)
        for c in range(C):
            sp = speak(sample_sentence(rng), v, emos[(s + c) % len(emos)], 0.8, 16000)
            emb[s, c] = enc.embed(sp.audio)
    emb = unit(emb)
    spk_mean = unit(emb.mean(1))
    own, mean_v = [], []
    for s in range(N):
        others = unit(spk_mean[[j for j in range(N) if j != s]].mean(0))
        for c in range(C):
            own.append(emb[s, c] @ unit(emb[s, [k for k in range(C) if k != c]].mean(0)))
            mean_v.append(emb[s, c] @ others)
    out[name] = {"own": float(np.mean(own)), "mean_voice": float(np.mean(mean_v)),
                 "headroom": float(np.mean(own) - np.mean(mean_v))}
    print(name, out[name], flush=True)
