"""A SynthTalk speaker's voice as a function of its visible face (the corpus card documents it).

Real faces carry cues of the voice (sex, age, build); a synthetic corpus whose voices are drawn
independently of the faces teaches a model nothing it could carry to an unseen speaker. Here the
espeak-ng voice is a deterministic, piecewise-smooth function of the face recipe's *visible*
attributes only (never of the speaker index, the mirror flag or the colour edits):

- **voice family** (espeak variant): a position ``p`` on the morph axis between the two photos,
  nudged by build. ``a`` = how far the face is morphed from the astronaut toward grace_hopper
  (``blend`` for an astronaut face, ``1 - blend`` for a grace_hopper one), ``p = 0.75·a + 0.25·b``;
  the variant is ``LADDER[floor(12·p)]``. The ladder is ordered so that neighbours sound alike
  (the max-similarity path through resemblyzer's GE2E embeddings of the 12 variants: adjacent
  cosine 0.71-0.98, mean 0.87, against 0.58 between its ends), so crossing a step is a small
  change of voice; it runs from the f variants (astronaut end) to the m variants.
- **pitch** (espeak base pitch 0-100) from build ``b`` = mean of the normalised face width and jaw
  width: ``pitch = 65 - 30·b`` (a broader face and jaw speak lower).
- **rate** (words/min) from liveliness ``r`` = mean of the normalised mouth width and brow height:
  ``rate = 135 + 35·r``.

Normalised = mapped from the recipe's range (``RECIPE_RANGES``) onto [0, 1]. Emotion is not part of
the voice: it is acted per clip on top of it (SSML prosody, ``voice.py``) and in the face.
"""

from __future__ import annotations

import math

from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.identity import PHOTOS, RECIPE_RANGES, IdentityRecipe

# espeak-ng en-us variants, neighbours most alike (see the module docstring); f at the astronaut end.
LADDER = ("f3", "f4", "f1", "f2", "f5", "m4", "m5", "m2", "m6", "m1", "m3", "m7")
PITCH_RANGE = (35, 65)    # espeak base pitch 0-100: b = 1 → 35, b = 0 → 65
RATE_RANGE = (135, 170)   # words per minute: GRID sentences of ~2 s, clips of ~2-3.5 s
FAMILY_BUILD_WEIGHT = 0.25


def normalised(recipe: IdentityRecipe, name: str) -> float:
    lo, hi = RECIPE_RANGES[name]
    return min(max((getattr(recipe, name) - lo) / (hi - lo), 0.0), 1.0)


def morph_axis(recipe: IdentityRecipe) -> float:
    """0 = the astronaut's face, 1 = grace_hopper's; a morph (``blend``) moves toward the other."""
    return recipe.blend if recipe.photo == PHOTOS[0] else 1.0 - recipe.blend


def face_traits(recipe: IdentityRecipe) -> dict[str, float]:
    """The visible traits the voice follows, each in [0, 1]."""
    build = 0.5 * (normalised(recipe, "width") + normalised(recipe, "jaw"))
    lively = 0.5 * (normalised(recipe, "mouth") + normalised(recipe, "brows"))
    a = morph_axis(recipe)
    family = min(max((1.0 - FAMILY_BUILD_WEIGHT) * a + FAMILY_BUILD_WEIGHT * build, 0.0), 1.0)
    return {"morph": a, "build": build, "lively": lively, "family": family}


def ladder_position(recipe: IdentityRecipe) -> int:
    return min(math.floor(face_traits(recipe)["family"] * len(LADDER)), len(LADDER) - 1)


def voice_of_face(recipe: IdentityRecipe) -> EspeakVoice:
    """The speaker's one voice, from its face recipe alone."""
    t = face_traits(recipe)
    pitch = round(PITCH_RANGE[1] - t["build"] * (PITCH_RANGE[1] - PITCH_RANGE[0]))
    rate = round(RATE_RANGE[0] + t["lively"] * (RATE_RANGE[1] - RATE_RANGE[0]))
    return EspeakVoice(variant=f"en-us+{LADDER[ladder_position(recipe)]}", pitch=pitch, rate=rate)
