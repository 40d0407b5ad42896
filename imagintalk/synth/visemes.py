"""Phonemes → visemes → per-frame mouth shape (opening, width, rounding).

espeak-ng reports phonemes in IPA. Each IPA symbol maps to a viseme: a target mouth shape as
(opening 0..1, width -1..1 spread/narrow, rounding 0..1). A phoneme's segment holds its
symbols' targets in turn (a diphthong glides from its first to its second vowel); the targets
are sampled on a fine grid, smoothed with a Gaussian (coarticulation: the lips anticipate and
carry over), bilabial closures are then forced shut (/p b m/ must close whatever their
neighbours), and the result is read at each video frame's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from imagintalk.synth.voice import Segment


@dataclass(frozen=True)
class Viseme:
    open: float
    width: float
    round: float


REST = Viseme(0.0, 0.0, 0.0)
_CLASSES: dict[str, tuple[str, Viseme]] = {
    # consonants
    "pbm": ("bilabial", Viseme(0.0, 0.0, 0.0)),
    "fv": ("labiodental", Viseme(0.10, 0.05, 0.0)),
    "θð": ("dental", Viseme(0.22, 0.05, 0.0)),
    "tdnlɾɫ": ("alveolar", Viseme(0.22, 0.10, 0.0)),
    "sz": ("sibilant", Viseme(0.12, 0.22, 0.0)),
    "ʃʒ": ("postalveolar", Viseme(0.20, -0.25, 0.6)),
    "kgɡŋhxʔ": ("velar", Viseme(0.32, 0.0, 0.0)),
    "ɹrɚɝ": ("rhotic", Viseme(0.22, -0.25, 0.55)),
    "w": ("labiovelar", Viseme(0.10, -0.55, 1.0)),
    "j": ("palatal", Viseme(0.20, 0.30, 0.0)),
    # vowels
    "iɪy": ("close-front", Viseme(0.30, 0.50, 0.0)),
    "eɛ": ("mid-front", Viseme(0.55, 0.35, 0.0)),
    "æ": ("open-front", Viseme(0.80, 0.30, 0.0)),
    "aɑɐʌ": ("open", Viseme(1.00, 0.10, 0.0)),
    "əɜ": ("schwa", Viseme(0.42, 0.0, 0.0)),
    "ɒɔ": ("open-round", Viseme(0.75, -0.20, 0.5)),
    "o": ("mid-round", Viseme(0.55, -0.35, 0.75)),
    "uʊ": ("close-round", Viseme(0.28, -0.50, 0.95)),
}
VISEMES: dict[str, Viseme] = {ch: v for chars, (_, v) in _CLASSES.items() for ch in chars}
BILABIAL = set("pbm")
UNKNOWN = Viseme(0.30, 0.0, 0.0)  # a symbol outside the table: a neutral half-open mouth
_MODIFIERS = set("ːˑˈˌ̃ʰʲʷ̩̯͡")  # length, stress, diacritics: no shape of their own


@dataclass(frozen=True)
class MouthTrack:
    """Per video frame: opening 0..1, width -1..1, rounding 0..1; ``closed`` marks bilabials."""

    open: np.ndarray
    width: np.ndarray
    round: np.ndarray
    closed: np.ndarray


def symbols(label: str) -> list[str]:
    return [ch for ch in label if ch not in _MODIFIERS]


def viseme_of(symbol: str) -> Viseme:
    return VISEMES.get(symbol, UNKNOWN)


def mouth_track(phones: tuple[Segment, ...], offset_s: float, n_frames: int, fps: int,
                coarticulation_s: float, grid_hz: int = 400) -> MouthTrack:
    """Mouth shape of each frame; ``offset_s`` is where the speech starts in the clip."""
    n = int(np.ceil(n_frames / fps * grid_hz)) + 1
    target = np.zeros((3, n), np.float32)  # rest between and around the words
    closed = np.zeros(n, bool)
    closures: list[float] = []  # midpoints of bilabials, in seconds
    for seg in phones:
        syms = symbols(seg.label)
        if not syms:
            continue
        lo, hi = (seg.start + offset_s) * grid_hz, (seg.end + offset_s) * grid_hz
        edges = np.linspace(lo, hi, len(syms) + 1)
        for sym, a, b in zip(syms, edges[:-1], edges[1:], strict=True):
            i, j = int(round(a)), max(int(round(b)), int(round(a)) + 1)
            v = viseme_of(sym)
            target[:, i:j] = np.array([[v.open], [v.width], [v.round]], np.float32)
            if sym in BILABIAL:
                # the lips meet in the middle of the closure, not over the whole segment
                k = (j - i) // 4
                closed[i + k:j - k] = True
                closures.append((a + b) / 2 / grid_hz)
    smooth = gaussian_filter1d(target, sigma=coarticulation_s * grid_hz, axis=1, mode="nearest")
    smooth[0, closed] = 0.0
    smooth[0] = gaussian_filter1d(smooth[0], sigma=coarticulation_s * grid_hz / 3, mode="nearest")
    centres = np.round((np.arange(n_frames) + 0.5) / fps * grid_hz).astype(int).clip(0, n - 1)
    shut = closed[centres]
    # A /b/ of 30 ms may fall between two frame centres: its frame still shows the lips shut.
    shut[np.clip((np.asarray(closures) * fps).astype(int), 0, n_frames - 1)] = True
    opening = np.where(shut, 0.0, smooth[0, centres].clip(0, None)).astype(np.float32)
    return MouthTrack(opening, smooth[1, centres], smooth[2, centres].clip(0, 1), shut)
