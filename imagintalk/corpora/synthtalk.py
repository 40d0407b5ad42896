"""SynthTalk (our synthetic corpus): ``{split}/{speaker}/{clip}.mp4`` + LRS3-style ``.txt`` and a
``metadata.csv`` at the root with ``split,speaker,clip,transcript,emotion,intensity,seed,voice,
identity,pitch,rate``. The split is the generator's (speaker-disjoint by construction)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from imagintalk.conventions import SYNTHTALK_METADATA, SYNTHTALK_METADATA_COLUMNS
from imagintalk.corpora.base import (
    UNKNOWN_LAYOUT,
    ClipSource,
    ScanResult,
    check_root,
    media_files,
    read_lrs_text,
)
from imagintalk.emotions import normalize_emotion
from imagintalk.errors import CorpusLayoutError

CORPUS = "synthtalk"
METADATA = SYNTHTALK_METADATA
METADATA_COLUMNS = SYNTHTALK_METADATA_COLUMNS
_CLIP = re.compile(r"^(train|val|test)/([^/]+)/([^/]+)\.mp4$")
_EXPECTED = "expected {split}/{speaker}/{clip}.mp4"
log = logging.getLogger(__name__)


def _read_metadata(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Rows keyed by (speaker, clip). A metadata table without the generator's columns means
    the tree is not a SynthTalk corpus at all, so it is a layout error for the whole root."""
    if not path.exists():
        log.warning("%s: no %s; emotions and intensities will be empty", path.parent, METADATA)
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(METADATA_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise CorpusLayoutError(path, f"metadata lacks columns {sorted(missing)}")
        return {(r["speaker"], r["clip"]): r for r in reader}


def scan_synthtalk(root: Path) -> ScanResult:
    root = check_root(root, CORPUS)
    scan = ScanResult(CORPUS, root)
    meta = _read_metadata(root / METADATA)
    for path in media_files(root, scan):
        m = _CLIP.match(path.relative_to(root).as_posix())
        if not m:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: {_EXPECTED}")
            continue
        split, speaker, clip = m.groups()
        row = meta.get((speaker, clip), {})
        if row and row["split"] != split:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: {METADATA} puts it in {row['split']!r}, the tree in {split!r}")
            continue
        try:
            emotion = normalize_emotion(row.get("emotion"))
            intensity = float(row["intensity"]) if row.get("intensity") else None
        except ValueError as exc:
            scan.reject(path, f"{UNKNOWN_LAYOUT}: {METADATA} row: {exc}")
            continue
        scan.sources.append(ClipSource(
            corpus=CORPUS, speaker=speaker, clip=clip, video_path=path, split=split,
            transcript=read_lrs_text(path.with_suffix(".txt")) or row.get("transcript") or None,
            emotion=emotion, intensity=intensity,
        ))
    return scan
