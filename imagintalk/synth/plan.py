"""The SynthTalk roster: speakers (a face fixed per speaker index, and the voice that face implies:
``face_voice.py``), their speaker-disjoint splits, and the clips each speaker records (emotion and
intensity balanced within every split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagintalk.config import SynthConfig
from imagintalk.conventions import SPLITS
from imagintalk.emotions import normalize_emotion
from imagintalk.errors import ConfigError
from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.face_voice import voice_of_face
from imagintalk.synth.identity import IdentityRecipe, identity_recipe


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
    """A speaker's one voice: the one its face implies (never the index itself)."""
    return voice_of_face(identity_recipe(index))


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
    recipes = [identity_recipe(k) for k in range(speakers)]
    roster = [SpeakerSpec(k, f"spk{k:02d}", splits[k], r, voice_of_face(r)) for k, r in enumerate(recipes)]
    clips: list[ClipSpec] = []
    position = dict.fromkeys(SPLITS, 0)
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
