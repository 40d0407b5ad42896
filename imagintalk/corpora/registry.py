"""Corpus name -> recipe. One entry per module; the names match the corpus cards in datasets/."""

from __future__ import annotations

from imagintalk.corpora.base import Scanner
from imagintalk.corpora.cremad import scan_cremad
from imagintalk.corpora.grid import scan_grid
from imagintalk.corpora.lrs2 import scan_lrs2
from imagintalk.corpora.lrs3 import scan_lrs3
from imagintalk.corpora.mead import scan_mead
from imagintalk.corpora.ravdess import scan_ravdess
from imagintalk.corpora.synthtalk import scan_synthtalk
from imagintalk.corpora.voxceleb2 import scan_voxceleb2
from imagintalk.errors import ConfigError

SCANNERS: dict[str, Scanner] = {
    "synthtalk": scan_synthtalk,
    "grid": scan_grid,
    "lrs2": scan_lrs2,
    "lrs3": scan_lrs3,
    "voxceleb2": scan_voxceleb2,
    "cremad": scan_cremad,
    "mead": scan_mead,
    "ravdess": scan_ravdess,
}


def get_scanner(corpus: str) -> Scanner:
    try:
        return SCANNERS[corpus]
    except KeyError:
        raise ConfigError(None, f"unknown corpus {corpus!r}; choose from {', '.join(SCANNERS)}") from None
