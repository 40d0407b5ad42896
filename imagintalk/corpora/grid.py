"""GRID audio-visual corpus: 34 talkers × 1000 sentences "command colour preposition letter digit
adverb". Videos and audio come as separate downloads and must be paired by the six-letter
utterance id (``bbaf2n`` = "bin blue at f two now"), which also encodes the sentence.

Layouts met in the wild (all accepted; the speaker is the ``s<N>`` folder on the path):
``s1/bbaf2n.mpg`` or ``s1/video/mpg_6000/bbaf2n.mpg`` (video), ``s1/audio/bbaf2n.wav`` or
``audio_25k/s1/bbaf2n.wav`` (audio), ``s1/align/…``, ``align/s1/…`` or ``alignments/s1/…``
(``.align`` word timings in 1/25000 s; ``sil``/``sp`` are not words).
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import (
    AUDIO_SUFFIXES,
    UNKNOWN_LAYOUT,
    VIDEO_SUFFIXES,
    ClipSource,
    ScanResult,
    check_root,
    walk_corpus,
)

CORPUS = "grid"
_SPEAKER = re.compile(r"s\d{1,2}")
_UTT = re.compile(r"([bslp])([bgrw])([abiw])([a-z])([0-9z])([anps])")
_WORDS = (
    {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    {"b": "blue", "g": "green", "r": "red", "w": "white"},
    {"a": "at", "b": "by", "i": "in", "w": "with"},
    None,  # the letter is spoken as itself
    {"z": "zero", "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
     "6": "six", "7": "seven", "8": "eight", "9": "nine"},
    {"a": "again", "n": "now", "p": "please", "s": "soon"},
)
_NOT_WORDS = frozenset({"sil", "sp"})


def sentence_from_id(utt: str) -> str | None:
    """The sentence a GRID utterance id encodes, or None when the id is not a GRID id."""
    m = _UTT.fullmatch(utt)
    if not m:
        return None
    return " ".join(code if table is None else table[code] for code, table in zip(m.groups(), _WORDS, strict=True))


def read_align(path: Path) -> str | None:
    """Words of a ``.align`` file (``start end word`` per line), silences dropped."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    words = [parts[2] for parts in (ln.split() for ln in lines) if len(parts) == 3]
    return " ".join(w for w in words if w not in _NOT_WORDS) or None


def scan_grid(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    videos: dict[tuple[str, str], Path] = {}
    audios: dict[tuple[str, str], Path] = {}
    aligns: dict[tuple[str, str], Path] = {}
    for path in walk_corpus(root, scan):
        suffix = path.suffix.lower()
        kind = ("video" if suffix in VIDEO_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES
                else "align" if suffix == ".align" else None)
        if kind is None:
            continue  # docs, checksums, zips: not clips
        speaker = next((p for p in path.relative_to(root).parts[:-1] if _SPEAKER.fullmatch(p)), None)
        if speaker is None or not _UTT.fullmatch(path.stem):
            if kind != "align":
                scan.reject(path, f"{UNKNOWN_LAYOUT}: expected s<N>/.../<utterance id e.g. bbaf2n>{suffix}")
            continue
        table = {"video": videos, "audio": audios, "align": aligns}[kind]
        if (speaker, path.stem) in table:
            scan.skipped += 1    # the same utterance in a second format (e.g. .mpg and .mp4)
            continue
        table[(speaker, path.stem)] = path
    for key, audio in sorted(audios.items()):
        if key not in videos:
            scan.reject(audio, "audio without a matching video (paired by speaker and utterance id)")
    for (speaker, utt), video in sorted(videos.items()):
        align = aligns.get((speaker, utt))
        transcript = (read_align(align) if align is not None else None) or sentence_from_id(utt)
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=speaker, clip=utt, video_path=video,
            audio_path=audios.get((speaker, utt)), transcript=transcript,
        ))
    return scan
