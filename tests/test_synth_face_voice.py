"""SynthTalk's voice follows the visible face: deterministic, smooth, similar faces sound alike."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from imagintalk.synth.face_voice import LADDER, face_traits, ladder_position, voice_of_face
from imagintalk.synth.identity import RECIPE_RANGES, identity_recipe
from imagintalk.synth.plan import plan_corpus, speaker_voice

RECIPES = [identity_recipe(k) for k in range(48)]
VOICE_FIELDS = ("width", "jaw", "mouth", "brows", "blend")


def _ladder(recipe) -> int:
    return LADDER.index(voice_of_face(recipe).variant.split("+")[1])


def test_voice_is_a_function_of_the_visible_face_only():
    r = RECIPES[5]
    assert voice_of_face(r) == voice_of_face(dataclasses.replace(r)) == speaker_voice(5)
    # name, mirror and colour edits do not change who the face is: nor the voice
    nuisance = dataclasses.replace(r, name="other", mirror=not r.mirror, hue=-r.hue, skin_l=0.0, gamma=1.0)
    assert voice_of_face(nuisance) == voice_of_face(r)
    # the roster uses it
    spec = plan_corpus(3, 1, 0, _synth_cfg())[2].speaker
    assert spec.voice == voice_of_face(spec.identity)


def test_small_face_changes_give_small_voice_changes():
    """1% of a trait's range moves pitch/rate by at most rounding and the variant at most one
    ladder step (neighbouring steps are the most alike variants)."""
    for r, name in itertools.product(RECIPES, VOICE_FIELDS):
        lo, hi = RECIPE_RANGES[name]
        v0 = voice_of_face(r)
        for sign in (-1, 1):
            moved = dataclasses.replace(r, **{name: float(np.clip(getattr(r, name) + sign * 0.01 * (hi - lo), lo, hi))})
            v1 = voice_of_face(moved)
            assert abs(v1.pitch - v0.pitch) <= 1 and abs(v1.rate - v0.rate) <= 1
            assert abs(ladder_position(moved) - ladder_position(r)) <= 1


def test_traits_move_the_voice_in_the_documented_directions():
    r = RECIPES[0]
    broad = dataclasses.replace(r, width=RECIPE_RANGES["width"][1], jaw=RECIPE_RANGES["jaw"][1])
    narrow = dataclasses.replace(r, width=RECIPE_RANGES["width"][0], jaw=RECIPE_RANGES["jaw"][0])
    assert voice_of_face(broad).pitch < voice_of_face(narrow).pitch
    lively = dataclasses.replace(r, mouth=RECIPE_RANGES["mouth"][1], brows=RECIPE_RANGES["brows"][1])
    assert voice_of_face(lively).rate > voice_of_face(r).rate
    astronaut = [x for x in RECIPES if x.photo == "astronaut"]
    hopper = [x for x in RECIPES if x.photo == "grace_hopper"]
    assert np.mean([_ladder(x) for x in astronaut]) + 4 < np.mean([_ladder(x) for x in hopper])
    more_morphed = dataclasses.replace(r, blend=r.blend + 0.3)
    assert ladder_position(more_morphed) > ladder_position(r)


def _face_vector(recipe) -> np.ndarray:
    t = face_traits(recipe)
    return np.array([t["morph"], t["build"], t["lively"]])


def _voice_vector(recipe) -> np.ndarray:
    v = voice_of_face(recipe)
    return np.array([_ladder(recipe) / (len(LADDER) - 1), (v.pitch - 35) / 30, (v.rate - 135) / 35])


def test_speakers_with_similar_faces_get_similar_voices():
    pairs = list(itertools.combinations(RECIPES, 2))
    face_d = np.array([np.linalg.norm(_face_vector(a) - _face_vector(b)) for a, b in pairs])
    voice_d = np.array([np.linalg.norm(_voice_vector(a) - _voice_vector(b)) for a, b in pairs])
    rank = np.argsort(np.argsort(face_d)), np.argsort(np.argsort(voice_d))
    spearman = float(np.corrcoef(*rank)[0, 1])
    assert spearman > 0.8
    near, far = face_d < np.quantile(face_d, 0.1), face_d > np.quantile(face_d, 0.9)
    assert voice_d[near].max() < voice_d[far].min()


def test_roster_voices_differ_between_speakers():
    roster = {c.speaker.speaker: c.speaker.voice for c in plan_corpus(6, 1, 0, _synth_cfg())}
    assert len({v.variant for v in roster.values()}) == 6


def test_resemblyzer_hears_near_faces_as_closer_than_far_faces():
    """Speakers 0 and 4 (astronaut faces, little morph) vs 0 and 5 (grace_hopper end)."""
    from imagintalk.features.speaker import speaker_similarity
    from imagintalk.synth.grammar import Sentence
    from imagintalk.synth.voice import speak

    sentence = Sentence(("bin", "blue", "at", "f", "two", "now"))
    audio = {k: speak(sentence, speaker_voice(k), "neutral", 0.0, 16000).audio for k in (0, 4, 5)}
    near, far = speaker_similarity(audio[0], audio[4]), speaker_similarity(audio[0], audio[5])
    assert near > far + 0.1


def _synth_cfg():
    from imagintalk.config import SynthConfig

    return SynthConfig()
