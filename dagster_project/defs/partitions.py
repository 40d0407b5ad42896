"""Corpus partitions: one static partition per corpus card in datasets/."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def corpus_names() -> list[str]:
    names = sorted(p.stem for p in DATASETS.glob("*.yaml"))
    return names or ["synthtalk"]


corpus_partitions = dg.StaticPartitionsDefinition(corpus_names())
