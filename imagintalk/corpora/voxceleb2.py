"""VoxCeleb2: ``dev|test/mp4/id{NNNNN}/{youtube id}/{NNNNN}.mp4`` (audio in the mp4; no transcripts,
no emotions). The ``aac/`` audio-only release beside it is known but unused (skipped). dev is
train with a hashed share of its speakers as val; test speakers are disjoint by design.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import UNKNOWN_LAYOUT, ClipSource, ScanResult, check_root, media_files

CORPUS = "voxceleb2"
# Extraction often leaves a wrapper folder (vox2_dev_mp4/dev/mp4/...): allow a prefix.
_CLIP = re.compile(r"^(?:.+/)?(dev|test)/mp4/(id\d+)/([^/]+)/(\d+)\.mp4$")
_AAC = re.compile(r"^(?:.+/)?(dev|test)/aac/(id\d+)/([^/]+)/(\d+)\.m4a$")


def scan_voxceleb2(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    for path in media_files(root, scan):
        rel = path.relative_to(root).as_posix()
        m = _CLIP.match(rel)
        if not m:
            if _AAC.match(rel):
                scan.skipped += 1
            else:
                scan.reject(path, f"{UNKNOWN_LAYOUT}: expected dev|test/mp4/id<N>/<youtube id>/<N>.mp4")
            continue
        subset, speaker, ytid, clip = m.groups()
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=speaker, clip=f"{ytid}_{clip}", video_path=path, split=subset,
        ))
    return scan
