"""GRID sentences: command colour preposition letter digit adverb (Cooke et al., 2006).

The transcript keeps the words as GRID writes them; the text handed to espeak-ng differs only
where espeak would mispronounce a GRID word (the letter "a" alone is read as the article).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMMANDS = ("bin", "lay", "place", "set")
COLOURS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple("abcdefghijklmnopqrstuvxyz")  # GRID leaves out "w" (three syllables)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ADVERBS = ("again", "now", "please", "soon")
SLOTS = (COMMANDS, COLOURS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)

# espeak-ng reads a lone "a" as the article /ə/; a phoneme literal makes it the letter name /eɪ/.
_TTS_SPELLING = {"a": "[['eI]]"}


@dataclass(frozen=True)
class Sentence:
    """One GRID sentence: six words, one per slot."""

    words: tuple[str, ...]

    @property
    def transcript(self) -> str:
        """Upper-case, single-spaced, as LRS3 and GRID transcripts are written."""
        return " ".join(self.words).upper()

    def tts_words(self) -> tuple[str, ...]:
        return tuple(_TTS_SPELLING.get(w, w) for w in self.words)

    def tts_text(self) -> str:
        """Text for espeak-ng (needs the phoneme-input flag for the letter literals)."""
        return " ".join(self.tts_words())


def sample_sentence(rng: np.random.Generator) -> Sentence:
    """Draw each slot uniformly, as the GRID corpus does."""
    return Sentence(tuple(slot[int(rng.integers(len(slot)))] for slot in SLOTS))
