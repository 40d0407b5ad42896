"""Intelligibility judge: pocketsphinx (bundled en-us acoustic model) constrained by a JSGF
grammar of the corpus vocabulary. With its default LM pocketsphinx is useless on synthetic
speech; with the GRID grammar it scores ~90% word accuracy on espeak-ng speech (DESIGN.md §1),
so generated and ground-truth speech are judged the same way and their ratio is meaningful.
It grades only transcripts the grammar can produce; an open-vocabulary corpus needs a CTC judge
(imagintalk/eval/ctc_asr.py), chosen by ``eval.asr`` (imagintalk/eval/intelligibility.py).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

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


class AsrJudge(Protocol):
    """What the evaluation asks of an ASR judge (this grammar judge, imagintalk/eval/ctc_asr.py)."""

    description: str            # the report's "which judge"

    def grades(self, transcript: str) -> bool:
        """Whether a clip with this transcript can be scored by this judge."""
        ...

    def transcribe(self, audio: np.ndarray, sample_rate: int = 16000) -> str:
        ...

    def transcribe_batch(self, audios: Sequence[np.ndarray], sample_rate: int = 16000) -> list[str]:
        ...


class GrammarASR:
    """Decode 16 kHz float audio to words under a fixed grammar (one decoder per instance). With
    ``slots`` it grades only transcripts that the grammar can produce (one word per slot, in order)."""

    def __init__(self, jsgf: str, sample_rate: int = 16000, slots: dict[str, tuple[str, ...]] | None = None,
                 description: str = "pocketsphinx (bundled en-us model) constrained by a JSGF grammar"):
        from pocketsphinx import Config, Decoder

        self._dir = tempfile.TemporaryDirectory(prefix="imagintalk-jsgf-")
        gram = Path(self._dir.name) / "grammar.gram"
        gram.write_text(jsgf)
        self.sample_rate = sample_rate
        self.slots = slots
        self.description = description
        self._decoder = Decoder(Config(jsgf=str(gram), lm=None, loglevel="FATAL", samprate=sample_rate))

    def grades(self, transcript: str) -> bool:
        from imagintalk.eval.metrics import normalise_text

        words = normalise_text(transcript or "").split()
        if self.slots is None:
            return bool(words)
        return len(words) == len(self.slots) and all(w in s for w, s in zip(words, self.slots.values(), strict=True))

    def transcribe(self, audio: np.ndarray, sample_rate: int = 16000) -> str:
        if sample_rate != self.sample_rate:
            import librosa

            audio = librosa.resample(np.asarray(audio, np.float32), orig_sr=sample_rate, target_sr=self.sample_rate)
        pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).astype(np.int16).tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr.strip().lower() if hyp is not None else ""

    def transcribe_batch(self, audios: Sequence[np.ndarray], sample_rate: int = 16000) -> list[str]:
        return [self.transcribe(a, sample_rate) for a in audios]   # pocketsphinx decodes one utterance at a time


GRID_JUDGE = "pocketsphinx (bundled en-us model) constrained by the GRID grammar"


@functools.lru_cache(maxsize=4)
def grid_asr() -> GrammarASR:
    return GrammarASR(jsgf_for_slots(GRID_SLOTS), slots=GRID_SLOTS, description=GRID_JUDGE)
