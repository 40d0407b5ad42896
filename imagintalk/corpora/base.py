"""What every corpus recipe shares: the clip record a scan yields, the scan result with its
rejects, a walker that never leaves the corpus root, and the speaker-disjoint split rule.

A recipe only parses names and folders (cheap, single pass over the tree); probing, hashing and
validating the media is the shared ingest step's job (``imagintalk.corpora.ingest``), so every
corpus gets the same checks and the same quarantine reasons.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagintalk.config import IngestConfig
from imagintalk.conventions import (  # noqa: F401 - suffixes re-exported for the recipes
    AUDIO_SUFFIXES,
    MEDIA_SUFFIXES,
    SPLITS,
    VIDEO_SUFFIXES,
)
from imagintalk.corpora.cards import CorpusCard
from imagintalk.corpora.manifest import QuarantineRow
from imagintalk.errors import CorpusLayoutError

UNKNOWN_LAYOUT = "unknown layout"
OUTSIDE_ROOT = "path outside the corpus root"


@dataclass(frozen=True)
class ClipSource:
    """One clip as the corpus's layout describes it, before any media is opened."""

    corpus: str
    speaker: str
    clip: str
    video_path: Path
    audio_path: Path | None = None    # a separate audio file; None: the video's own track
    split: str | None = None          # the corpus's own split, when it gives one
    transcript: str | None = None
    emotion: str | None = None        # already in imagintalk.emotions.EMOTIONS
    intensity: float | None = None

    @property
    def clip_id(self) -> str:
        return f"{self.corpus}/{self.speaker}/{self.clip}"


@dataclass
class ScanResult:
    """Clips found, files refused by the layout (quarantined), files known but not used."""

    corpus: str
    root: Path
    sources: list[ClipSource] = field(default_factory=list)
    rejects: list[QuarantineRow] = field(default_factory=list)
    skipped: int = 0    # e.g. RAVDESS song/video-only files, MEAD side views: valid, deliberately unused

    def reject(self, path: Path, reason: str, kind: str = "layout") -> None:
        self.rejects.append(QuarantineRow(path=str(path), corpus=self.corpus, stage="ingest",
                                          kind=kind, reason=reason))


Scanner = Callable[[Path], ScanResult]


def check_root(root: Path, corpus: str) -> Path:
    """The absolute root, or CorpusLayoutError when it is missing or not a directory."""
    root = Path(root)
    if not root.exists():
        raise CorpusLayoutError(root, f"{corpus} root does not exist")
    if not root.is_dir():
        raise CorpusLayoutError(root, f"{corpus} root is not a directory")
    return Path(os.path.abspath(root))


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` with every symlink and ``..`` resolved lies under ``root``."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))
    except (OSError, ValueError):
        return False


def walk_corpus(root: Path, scan: ScanResult) -> list[Path]:
    """Every file under ``root`` (sorted, absolute, symlinks kept unresolved).

    Directory symlinks are followed only while they stay inside the root; one that leads out is
    recorded as a reject and not entered (a corpus must not pull in files from elsewhere, and
    following it could loop). File symlinks are returned as they are; the ingest step checks
    where they point.
    """
    real_root = os.path.realpath(root)
    files: list[Path] = []
    seen: set[str] = set()
    def unreadable(err: OSError) -> None:   # os.walk would otherwise drop the folder silently
        scan.reject(Path(err.filename or root), f"unreadable directory ({err.strerror or err})", kind="media")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for d in sorted(x for x in dirnames if not x.startswith(".")):   # .git, .dvc, caches
            full = os.path.join(dirpath, d)
            if not Path(os.path.realpath(full)).is_relative_to(real_root):
                scan.reject(Path(full), OUTSIDE_ROOT + " (directory symlink)")
            else:
                keep.append(d)
        dirnames[:] = keep
        files.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(files)


def media_files(root: Path, scan: ScanResult) -> list[Path]:
    """The media files under root; everything else (transcripts, lists, docs) is for recipes to read."""
    return [p for p in walk_corpus(root, scan) if p.suffix.lower() in MEDIA_SUFFIXES]


def read_lrs_text(path: Path) -> str | None:
    """The words of an LRS-style ``.txt`` (first line ``Text:  WORDS``); None when absent/unreadable."""
    try:
        first = path.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.match(r"\s*Text:\s*(.*)$", first)
    text = " ".join(m.group(1).split()) if m else ""
    return text or None


def speaker_hash(corpus: str, speaker: str) -> float:
    """A stable number in [0, 1) per speaker: the same speaker lands in the same split on every
    machine and in every version of the corpus (adding speakers never moves the old ones)."""
    digest = hashlib.sha256(f"{corpus}/{speaker}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def resolve_split(src: ClipSource, card: CorpusCard, cfg: IngestConfig) -> str:
    """Final split of a clip by the card's rule (see ``SplitRule``); always speaker-level."""
    rule = card.splits
    if src.speaker in rule.test_speakers:
        return "test"
    if src.speaker in rule.val_speakers:
        return "val"
    val_f = cfg.val_fraction if rule.val_fraction is None else rule.val_fraction
    test_f = cfg.test_fraction if rule.test_fraction is None else rule.test_fraction
    if src.split is not None:
        split = rule.folder_map.get(src.split, src.split)
        if split not in SPLITS:
            raise CorpusLayoutError(src.video_path, f"split {src.split!r} is not one of {SPLITS}")
        if split == "train" and rule.val_from_train:
            return "val" if speaker_hash(src.corpus, src.speaker) < val_f else "train"
        return split
    h = speaker_hash(src.corpus, src.speaker)
    return "test" if h < test_f else "val" if h < test_f + val_f else "train"
