"""Speech of a SynthTalk sentence: a speaker's fixed espeak-ng voice, an emotion's SSML prosody,
16 kHz samples, and the phoneme and word timings that drive the lips.

Emotions are prosody only (as in acted corpora the words stay the same): pitch level and range,
speaking rate and loudness, interpolated between neutral and the full setting by the intensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from imagintalk.errors import MediaError
from imagintalk.synth.espeak import (
    EVENT_END,
    EVENT_PHONEME,
    EVENT_WORD,
    SOURCE,
    EspeakVoice,
    espeak_client,
)
from imagintalk.synth.grammar import Sentence


@dataclass(frozen=True)
class Prosody:
    """SSML ``<prosody>`` relative to the speaker's voice (percent changes; rate in percent)."""

    pitch: float
    range: float
    rate: float
    volume: float

    def blend(self, intensity: float) -> Prosody:
        """Neutral at intensity 0, this prosody at 1."""
        n = EMOTION_PROSODY["neutral"]
        return Prosody(*(a + intensity * (b - a) for a, b in zip(
            (n.pitch, n.range, n.rate, n.volume), (self.pitch, self.range, self.rate, self.volume),
            strict=True)))

    def ssml(self, text: str) -> str:
        return (f'<speak><prosody pitch="{self.pitch:+.0f}%" range="{self.range:+.0f}%" '
                f'rate="{self.rate:.0f}%" volume="{self.volume:+.0f}%">{text}</prosody></speak>')


# Directions after the acoustic-correlates literature on acted emotion (Scherer 2003; Banse &
# Scherer 1996): happy and surprised raise pitch and widen its range, sad lowers, flattens, slows
# and softens, angry is fast and loud with a moderately raised pitch.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(pitch=0, range=0, rate=100, volume=0),
    "happy": Prosody(pitch=25, range=60, rate=112, volume=10),
    "sad": Prosody(pitch=-20, range=-60, rate=80, volume=-35),
    "angry": Prosody(pitch=8, range=30, rate=124, volume=35),
    "surprised": Prosody(pitch=40, range=90, rate=98, volume=15),
}


@dataclass(frozen=True)
class Segment:
    """A labelled time span in seconds from the start of the speech."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray               # float32 mono at ``sample_rate``, no padding
    sample_rate: int
    phones: tuple[Segment, ...]     # IPA labels; "" is a pause
    words: tuple[Segment, ...]      # the sentence's words (lower case) with their spans


def speak(sentence: Sentence, voice: EspeakVoice, emotion: str, intensity: float,
          sample_rate: int) -> Speech:
    """Synthesise ``sentence`` and resample to ``sample_rate``; timings from espeak's events."""
    if emotion not in EMOTION_PROSODY:
        raise MediaError(SOURCE, f"no prosody for emotion {emotion!r} (have {sorted(EMOTION_PROSODY)})")
    prosody = EMOTION_PROSODY[emotion].blend(intensity)
    ssml = prosody.ssml(sentence.tts_text())
    out = espeak_client().synthesize(ssml, voice)
    if out.samples.size == 0:
        raise MediaError(SOURCE, f"{voice.variant} produced no samples for {sentence.transcript!r}")
    audio = out.samples.astype(np.float32) / 32768.0
    if out.sample_rate != sample_rate:
        g = np.gcd(out.sample_rate, sample_rate)
        audio = resample_poly(audio, sample_rate // g, out.sample_rate // g).astype(np.float32)
    src_rate = float(out.sample_rate)
    total = out.samples.size / src_rate
    phones = _phone_segments(out.events, src_rate, total)
    words = _word_segments(out.events, phones, sentence, ssml, src_rate, voice)
    return Speech(audio, sample_rate, phones, words)


def _phone_segments(events, src_rate: float, total: float) -> tuple[Segment, ...]:
    """Each phoneme lasts until the next phoneme (or the end of the message)."""
    marks = [(e.sample / src_rate, e.name) for e in events if e.kind == EVENT_PHONEME]
    ends = [e.sample / src_rate for e in events if e.kind == EVENT_END]
    stop = min(max(ends, default=total), total)
    segs = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else stop
        if end > start:
            segs.append(Segment(name, start, end))
    return tuple(segs)


def _word_segments(events, phones, sentence: Sentence, ssml: str, src_rate: float,
                   voice: EspeakVoice) -> tuple[Segment, ...]:
    """Word spans from espeak's word events, matched to the words by character position.

    Matching by position rather than by order: espeak may add events (a trailing spelled letter
    gets a second one), and reports a phoneme literal's position inside its brackets.
    """
    spans, cursor = [], 0
    for token in sentence.tts_words():
        at = ssml.index(token, cursor)
        spans.append((at + 1, at + 1 + len(token)))  # espeak positions are 1-based
        cursor = at + len(token)
    starts: list[float | None] = [None] * len(spans)
    for e in events:
        if e.kind != EVENT_WORD:
            continue
        for i, (lo, hi) in enumerate(spans):
            if lo <= e.text_position < hi and starts[i] is None:
                starts[i] = e.sample / src_rate
    missing = [w for w, t in zip(sentence.words, starts, strict=True) if t is None]
    if missing:
        raise MediaError(SOURCE, f"{voice.variant}: no word event for {missing} in {sentence.transcript!r}")
    words = []
    for i, (word, start) in enumerate(zip(sentence.words, starts, strict=True)):
        nxt = starts[i + 1] if i + 1 < len(starts) else float("inf")
        spoken = [p for p in phones if p.label and start - 1e-6 <= p.start < nxt]
        # espeak emits the word event a little before its first phoneme: start at the phoneme
        begin = spoken[0].start if spoken else start
        end = spoken[-1].end if spoken else start
        words.append(Segment(word, begin, end))
    return tuple(words)
