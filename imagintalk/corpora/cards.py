"""Corpus cards: one YAML per corpus under ``datasets/`` saying what the corpus is, where to get it,
its layout, how its splits are made and how its labels map onto ours.

Recipes read their label maps and split rules from the card rather than hard-coding them, so the
card a person reads is the rule the code applies; the orchestration partitions assets by card.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagintalk.errors import ConfigError

DATASETS_ENV = "IMAGINTALK_DATASETS"
DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "datasets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitRule(_Strict):
    """How a clip's split is decided (first match wins).

    1. ``test_speakers`` / ``val_speakers``: fixed lists (e.g. GRID's unseen-speaker protocol).
    2. The corpus's own split (folder or filelist), mapped through ``folder_map``; when
       ``val_from_train`` is set, part of the corpus's train speakers is carved out as val by hash.
    3. Otherwise a deterministic hash of the speaker id against ``val_fraction``/``test_fraction``
       (None: the fractions in params.yaml ``ingest``).
    """

    rule: Literal["folder", "filelist", "hash"]
    folder_map: dict[str, str] = Field(default_factory=dict)
    filelists: dict[str, str] = Field(default_factory=dict)   # filelist name -> split
    test_speakers: list[str] = Field(default_factory=list)
    val_speakers: list[str] = Field(default_factory=list)
    val_from_train: bool = False
    val_fraction: float | None = None
    test_fraction: float | None = None


class Labels(_Strict):
    emotion_map: dict[str, str] = Field(default_factory=dict)     # corpus code -> corpus label
    intensity_map: dict[str, float | None] = Field(default_factory=dict)
    sentences: dict[str, str] = Field(default_factory=dict)       # sentence code -> text


class CorpusCard(_Strict):
    name: str
    title: str
    licence: str
    homepage: str
    obtain: str
    layout: str
    speaker: str                   # what the speaker id is, for this corpus
    has_transcripts: bool
    has_emotions: bool
    splits: SplitRule
    labels: Labels = Labels()
    notes: str = ""


def datasets_dir() -> Path:
    return Path(os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS)


def list_cards() -> list[str]:
    """Names of every card under ``datasets/`` (sorted), i.e. the corpora the pipeline knows."""
    return sorted(p.stem for p in datasets_dir().glob("*.yaml"))


@cache
def _load(path: Path) -> CorpusCard:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML ({exc.__class__.__name__})") from exc
    try:
        card = CorpusCard.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    if card.name != path.stem:
        raise ConfigError(path, f"card name {card.name!r} differs from its file name")
    return card


def load_card(name: str) -> CorpusCard:
    """The card ``datasets/<name>.yaml``; ConfigError naming the file when absent or malformed."""
    path = datasets_dir() / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(path, f"no corpus card for {name!r} (known: {', '.join(list_cards())})")
    return _load(path.resolve())
