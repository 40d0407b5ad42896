"""RAVDESS: ``Actor_NN/MM-VC-EE-II-SS-RR-AA.mp4`` — modality (01 full AV, 02 video only, 03 audio
only), vocal channel (01 speech, 02 song), emotion, intensity, statement, repetition, actor.
Only full-AV speech is used (the rest is known, skipped). Code tables (emotion, intensity,
the two statements) come from the corpus card. Splits: speaker hash.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import UNKNOWN_LAYOUT, ClipSource, ScanResult, check_root, media_files
from imagintalk.corpora.cards import load_card
from imagintalk.emotions import normalize_emotion

CORPUS = "ravdess"
FULL_AV, SPEECH = "01", "01"
_FILE = re.compile(r"^Actor_(\d{2})/(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.(mp4|wav)$")


def scan_ravdess(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    labels = load_card(CORPUS).labels
    for path in media_files(root, scan):
        m = _FILE.match(path.relative_to(root).as_posix())
        if not m:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: expected Actor_NN/MM-VC-EE-II-SS-RR-AA.mp4")
            continue
        folder_actor, modality, channel, emo, level, statement, _rep, actor = m.groups()[:8]
        if actor != folder_actor:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: actor field {actor} in folder Actor_{folder_actor}")
            continue
        if modality != FULL_AV or channel != SPEECH or path.suffix != ".mp4":
            scan.skipped += 1
            continue
        if emo not in labels.emotion_map or level not in labels.intensity_map \
                or statement not in labels.sentences:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: unknown RAVDESS code in {path.stem}")
            continue
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=f"Actor_{actor}", clip=path.stem, video_path=path,
            transcript=labels.sentences[statement], emotion=normalize_emotion(labels.emotion_map[emo]),
            intensity=labels.intensity_map[level],
        ))
    return scan
