"""Corpus name -> recipe: ``scan_<name>`` in ``imagintalk/corpora/<name>.py`` for every name in
``imagintalk.conventions.CORPORA`` (the names of the corpus cards in datasets/)."""

from __future__ import annotations

import importlib

from imagintalk.conventions import CORPORA
from imagintalk.corpora.base import Scanner
from imagintalk.errors import ConfigError


def _scanner(corpus: str) -> Scanner:
    return getattr(importlib.import_module(f"imagintalk.corpora.{corpus}"), f"scan_{corpus}")


SCANNERS: dict[str, Scanner] = {name: _scanner(name) for name in CORPORA}


def get_scanner(corpus: str) -> Scanner:
    try:
        return SCANNERS[corpus]
    except KeyError:
        raise ConfigError(None, f"unknown corpus {corpus!r}; choose from {', '.join(SCANNERS)}") from None
