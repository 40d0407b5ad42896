"""MEAD: ``{M|W}###/video/{view}/{emotion}/level_{N}/{NNN}.mp4`` with the audio apart in
``{M|W}###/audio/{emotion}/level_{N}/{NNN}.m4a``; paired by (speaker, emotion, level, number).
Only the frontal view is used (the six side views are known, skipped). Emotion folder names and
the level -> intensity map (level/3) come from the corpus card. MEAD ships no per-clip
transcripts. Splits: speaker hash.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import UNKNOWN_LAYOUT, ClipSource, ScanResult, check_root, media_files
from imagintalk.corpora.cards import load_card
from imagintalk.emotions import normalize_emotion

CORPUS = "mead"
VIEW = "front"
_VIDEO = re.compile(r"^([MW]\d{3})/video/([a-z0-9_]+)/([a-z]+)/level_(\d+)/(\d{3})\.mp4$")
_AUDIO = re.compile(r"^([MW]\d{3})/audio/([a-z]+)/level_(\d+)/(\d{3})\.m4a$")


def scan_mead(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    labels = load_card(CORPUS).labels
    videos: dict[tuple[str, str, str, str], Path] = {}
    audios: dict[tuple[str, str, str, str], Path] = {}
    for path in media_files(root, scan):
        rel = path.relative_to(root).as_posix()
        if m := _VIDEO.match(rel):
            speaker, view, emo, level, num = m.groups()
            if view != VIEW:
                scan.skipped += 1
                continue
            videos[(speaker, emo, level, num)] = path
        elif m := _AUDIO.match(rel):
            audios[m.groups()] = path
        else:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: expected <M|W###>/video/front/<emotion>/level_<N>/<NNN>.mp4 "
                              "or <M|W###>/audio/<emotion>/level_<N>/<NNN>.m4a")
    for key, audio in sorted(audios.items()):
        if key not in videos:
            scan.reject(audio, "audio without a matching frontal video")
    for key, video in sorted(videos.items()):
        speaker, emo, level, num = key
        if emo not in labels.emotion_map or level not in labels.intensity_map:
            scan.reject(video, f"{UNKNOWN_LAYOUT}: unknown MEAD emotion {emo!r} or level {level!r}")
            continue
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=speaker, clip=f"{emo}_level{level}_{num}", video_path=video,
            audio_path=audios.get(key), emotion=normalize_emotion(labels.emotion_map[emo]),
            intensity=labels.intensity_map[level],
        ))
    return scan
