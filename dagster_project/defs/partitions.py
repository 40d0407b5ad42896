"""Corpus partitions: one static partition per corpus card in datasets/."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def corpus_names() -> list[str]:
    """Every corpus card, plus the corpus profiles of params.yaml (imagintalk/profiles.py)."""
    from imagintalk.config import load_params

    names = {p.stem for p in DATASETS.glob("*.yaml")} | set(load_params().corpora)
    return sorted(names) or ["synthtalk"]


corpus_partitions = dg.StaticPartitionsDefinition(corpus_names())
