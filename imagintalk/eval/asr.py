"""Intelligibility judge: pocketsphinx (bundled en-us acoustic model) constrained by a JSGF
grammar of the corpus vocabulary. With its default LM pocketsphinx is useless on synthetic
speech; with the GRID grammar it scores ~90% word accuracy on espeak-ng speech (DESIGN.md §1),
so generated and ground-truth speech are judged the same way and their ratio is meaningful.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

GRID_SLOTS: dict[str, tuple[str, ...]] = {
    "command": ("bin", "lay", "place", "set"),
    "color": ("blue", "green", "red", "white"),
    "preposition": ("at", "by", "in", "with"),
    "letter": tuple("abcdefghijklmnopqrstuvxyz"),  # GRID omits w
    "digit": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "adverb": ("again", "now", "please", "soon"),
}


def jsgf_for_slots(slots: dict[str, tuple[str, ...]], name: str = "grid") -> str:
    """A JSGF grammar that accepts one word per slot, in order."""
    rules = [f"<{k}> = {' | '.join(v)};" for k, v in slots.items()]
    public = "public <sentence> = " + " ".join(f"<{k}>" for k in slots) + ";"
    return "\n".join(["#JSGF V1.0;", f"grammar {name};", public, *rules, ""])


class GrammarASR:
    """Decode 16 kHz float audio to words under a fixed grammar (one decoder per instance)."""

    def __init__(self, jsgf: str, sample_rate: int = 16000):
        from pocketsphinx import Config, Decoder

        self._dir = tempfile.TemporaryDirectory(prefix="imagintalk-jsgf-")
        gram = Path(self._dir.name) / "grammar.gram"
        gram.write_text(jsgf)
        self._decoder = Decoder(Config(jsgf=str(gram), lm=None, loglevel="FATAL", samprate=sample_rate))

    def transcribe(self, audio: np.ndarray) -> str:
        pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).astype(np.int16).tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr.strip().lower() if hyp is not None else ""


@functools.lru_cache(maxsize=4)
def grid_asr() -> GrammarASR:
    return GrammarASR(jsgf_for_slots(GRID_SLOTS))
