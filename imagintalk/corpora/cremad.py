"""CREMA-D: 91 actors (1001-1091) × 12 sentences × 6 emotions. Files are named
``{actor}_{sentence}_{emotion}_{level}`` in ``VideoFlash/`` (.flv), ``VideoMP4/`` (.mp4, a later
conversion) and ``AudioWAV/`` (.wav); video and audio are paired by that stem. Sentence codes,
emotion codes and the level -> intensity map come from the corpus card. Splits: speaker hash.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import UNKNOWN_LAYOUT, ClipSource, ScanResult, check_root, media_files
from imagintalk.corpora.cards import load_card
from imagintalk.emotions import normalize_emotion

CORPUS = "cremad"
_FILE = re.compile(r"^(VideoMP4|VideoFlash|AudioWAV|AudioMP3)/(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})"
                   r"\.(mp4|flv|wav|mp3)$")
_VIDEO_DIRS = ("VideoMP4", "VideoFlash")   # preference order when both hold a clip


def scan_cremad(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    labels = load_card(CORPUS).labels
    videos: dict[str, Path] = {}
    audios: dict[str, Path] = {}
    for path in sorted(media_files(root, scan), key=lambda p: (_rank(p, root), p)):
        m = _FILE.match(path.relative_to(root).as_posix())
        if not m:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: expected VideoFlash|VideoMP4|AudioWAV/"
                              "<actor>_<sentence>_<emotion>_<level>.flv|mp4|wav")
            continue
        folder = m.group(1)
        stem = path.stem
        if folder == "AudioMP3":
            scan.skipped += 1         # a lossy copy of AudioWAV
        elif folder == "AudioWAV":
            audios[stem] = path
        elif stem in videos:
            scan.skipped += 1         # the same clip in the other video format
        else:
            videos[stem] = path
    for stem, audio in sorted(audios.items()):
        if stem not in videos:
            scan.reject(audio, "audio without a matching video (paired by file stem)")
    for stem, video in sorted(videos.items()):
        actor, sentence, emo, level = stem.split("_")
        problem = ("sentence" if sentence not in labels.sentences else
                   "emotion" if emo not in labels.emotion_map else
                   "level" if level not in labels.intensity_map else None)
        if problem:
            scan.reject(video, f"{UNKNOWN_LAYOUT}: unknown CREMA-D {problem} code in {stem}")
            continue
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=actor, clip=stem, video_path=video, audio_path=audios.get(stem),
            transcript=labels.sentences[sentence], emotion=normalize_emotion(labels.emotion_map[emo]),
            intensity=labels.intensity_map[level],
        ))
    return scan


def _rank(path: Path, root: Path) -> int:
    top = path.relative_to(root).parts[0]
    return _VIDEO_DIRS.index(top) if top in _VIDEO_DIRS else len(_VIDEO_DIRS)
