"""The SynthTalk roster: speakers (face + voice, fixed per speaker index), their speaker-disjoint
splits, and the clips each speaker records (emotion and intensity balanced within every split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagintalk.config import SynthConfig
from imagintalk.emotions import normalize_emotion
from imagintalk.errors import ConfigError
from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.identity import IdentityRecipe, identity_recipe

# Alternating male and female variants so neighbouring speakers sound unlike each other.
VOICE_VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7")
PITCH_RANGE = (35, 65)    # espeak base pitch 0-100
RATE_RANGE = (135, 170)   # words per minute: GRID sentences of ~2 s, clips of ~2-3.5 s
GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class SpeakerSpec:
    index: int
    speaker: str            # spk00
    split: str
    identity: IdentityRecipe
    voice: EspeakVoice


@dataclass(frozen=True)
class ClipSpec:
    speaker: SpeakerSpec
    index: int
    clip: str               # 00000
    emotion: str
    intensity: float
    seed: int               # the corpus seed; the clip's generator is seeded from (seed, speaker, clip)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.speaker.index, self.index]))


def speaker_voice(index: int) -> EspeakVoice:
    """A speaker's one voice: the variant cycles; pitch and rate follow golden-ratio strides."""
    u = (0.5 + index * GOLDEN) % 1.0
    v = (0.5 + index * GOLDEN * GOLDEN) % 1.0
    pitch = round(PITCH_RANGE[0] + u * (PITCH_RANGE[1] - PITCH_RANGE[0]))
    rate = round(RATE_RANGE[0] + v * (RATE_RANGE[1] - RATE_RANGE[0]))
    return EspeakVoice(variant=f"en-us+{VOICE_VARIANTS[index % len(VOICE_VARIANTS)]}", pitch=pitch, rate=rate)


def split_of_speakers(n: int, val: int, test: int) -> list[str]:
    """Speaker-disjoint splits: the last speakers are test, the ones before them val; at least
    one speaker always stays in train."""
    n_test = min(test, max(n - 1, 0))
    n_val = min(val, max(n - 1 - n_test, 0))
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def plan_corpus(speakers: int, clips_per_speaker: int, seed: int, cfg: SynthConfig) -> list[ClipSpec]:
    if speakers < 1 or clips_per_speaker < 1:
        raise ConfigError("synth", f"need at least one speaker and one clip (got {speakers}, "
                                   f"{clips_per_speaker})")
    emotions = [_checked_emotion(e) for e in cfg.emotions]
    if not emotions:
        raise ConfigError("synth.emotions", "empty")
    splits = split_of_speakers(speakers, cfg.val_speakers, cfg.test_speakers)
    roster = [SpeakerSpec(k, f"spk{k:02d}", splits[k], identity_recipe(k), speaker_voice(k))
              for k in range(speakers)]
    clips: list[ClipSpec] = []
    position = dict.fromkeys(("train", "val", "test"), 0)
    for spk in roster:
        for j in range(clips_per_speaker):
            # Emotions cycle within the split, so any split with ≥ len(emotions) clips has them all;
            # intensity levels cycle once per round of emotions.
            p = position[spk.split]
            position[spk.split] += 1
            emotion = emotions[p % len(emotions)]
            level = cfg.intensity_levels[(p // len(emotions)) % len(cfg.intensity_levels)]
            clips.append(ClipSpec(spk, j, f"{j:05d}", emotion, 0.0 if emotion == "neutral" else level,
                                  seed))
    return clips


def _checked_emotion(name: str) -> str:
    from imagintalk.synth.animate import EXPRESSIONS
    from imagintalk.synth.voice import EMOTION_PROSODY

    try:
        label = normalize_emotion(name)
    except ValueError as exc:
        raise ConfigError("synth.emotions", str(exc)) from exc
    if label not in EXPRESSIONS or label not in EMOTION_PROSODY:
        raise ConfigError("synth.emotions", f"SynthTalk cannot act {label!r} (has {sorted(EXPRESSIONS)})")
    return label
