"""LRS3-TED: ``pretrain|trainval|test/{speaker}/{clip}.mp4`` + ``.txt`` (``Text:  WORDS``).

The folder id is the TED talk's YouTube id, which the corpus uses as its speaker id; test
speakers are disjoint from pretrain/trainval. There is no official val: a hashed share of the
train speakers becomes val (the card's ``val_from_train``). Pretrain and trainval reuse clip
numbers, so the subset is part of the clip name.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagintalk.corpora.base import (
    UNKNOWN_LAYOUT,
    ClipSource,
    ScanResult,
    check_root,
    media_files,
    read_lrs_text,
)

CORPUS = "lrs3"
_CLIP = re.compile(r"^(pretrain|trainval|test)/([^/]+)/(\d+)\.mp4$")


def scan_lrs3(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    for path in media_files(root, scan):
        m = _CLIP.match(path.relative_to(root).as_posix())
        if not m:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: expected pretrain|trainval|test/<speaker>/<clip>.mp4")
            continue
        subset, speaker, clip = m.groups()
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=speaker, clip=f"{subset}_{clip}", video_path=path, split=subset,
            transcript=read_lrs_text(path.with_suffix(".txt")),
        ))
    return scan
