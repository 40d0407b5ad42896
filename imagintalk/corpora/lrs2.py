"""LRS2-BBC: ``mvlrs_v1/main/{programme}/{clip}.mp4`` (+ ``.txt``, first line ``Text:  WORDS``)
and ``mvlrs_v1/pretrain/…``, with the official filelists ``train.txt val.txt test.txt
pretrain.txt`` at the root (lines ``5535415699068794046/00001``, test lines may carry a flag).

LRS2 has no speaker labels: the programme folder is the speaker proxy (the official splits are
by broadcast date, so programmes do not cross splits). Clip names carry the subset
(``main_00001``, ``pretrain_00001``) because both subsets reuse the same numbers.
"""

from __future__ import annotations

import logging
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
from imagintalk.corpora.cards import load_card

CORPUS = "lrs2"
_CLIP = re.compile(r"^(?:mvlrs_v1/)?(main|pretrain)/(\d+)/(\d+)\.mp4$")
log = logging.getLogger(__name__)


def read_filelists(root: Path, filelists: dict[str, str]) -> dict[str, str]:
    """``programme/clip`` -> split from whichever official lists exist at the root."""
    split_of: dict[str, str] = {}
    for name, split in filelists.items():
        path = root / name
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                split_of[line.split()[0]] = split
    return split_of


def scan_lrs2(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    card = load_card(CORPUS)
    split_of = read_filelists(root, card.splits.filelists)
    if not split_of:
        log.warning("%s: no LRS2 filelists; splits fall back to the speaker hash", root)
    for path in media_files(root, scan):
        m = _CLIP.match(path.relative_to(root).as_posix())
        if not m:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: expected [mvlrs_v1/]main|pretrain/<programme>/<clip>.mp4")
            continue
        subset, programme, clip = m.groups()
        split = split_of.get(f"{programme}/{clip}")
        if subset == "pretrain":
            split = card.splits.folder_map.get(subset, split)
        elif split_of and split is None:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: {programme}/{clip} is in none of "
                              f"{', '.join(card.splits.filelists)}")
            continue
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=programme, clip=f"{subset}_{clip}", video_path=path, split=split,
            transcript=read_lrs_text(path.with_suffix(".txt")),
        ))
    return scan
