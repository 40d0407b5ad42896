"""Stage ``ingest``: a corpus in its original layout -> the typed manifest + quarantine table.

The same function serves the CLI (``imagintalk ingest``), DVC and the Dagster asset.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from imagintalk.config import Params, load_params
from imagintalk.corpora.base import is_inside
from imagintalk.corpora.cards import load_card
from imagintalk.corpora.ingest import build_manifest
from imagintalk.corpora.manifest import SPLITS, quarantine_path, write_manifest
from imagintalk.corpora.registry import get_scanner
from imagintalk.errors import ConfigError, CorpusLayoutError
from imagintalk.profiles import recipe_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    corpus: str
    manifest_path: Path
    quarantine_path: Path
    n_clips: int
    n_quarantined: int
    n_skipped: int              # known files deliberately unused (e.g. RAVDESS song, MEAD side views)
    n_speakers: int
    hours: float
    splits: dict[str, int] = field(default_factory=dict)

    def summary_line(self) -> str:
        per_split = " / ".join(f"{s} {self.splits.get(s, 0)}" for s in SPLITS)
        return (f"ingest {self.corpus}: {self.n_clips} clips ({per_split}), {self.n_speakers} speakers, "
                f"{self.hours:.3f} h; {self.n_quarantined} quarantined, {self.n_skipped} skipped "
                f"-> {self.manifest_path}")


def ingest_corpus(corpus: str, raw_dir: Path, out: Path, params: Params | None = None) -> IngestSummary:
    """Scan ``raw_dir`` with the corpus's recipe, validate and hash every clip, write the manifest.

    Raises CorpusLayoutError when the root does not exist or holds nothing in the corpus's layout
    (a wrong path or corpus name, not a few bad files); bad files are quarantined instead.
    """
    params = params or load_params()
    recipe = recipe_of(params, corpus)  # a corpus profile (synthtalk_large) reads as its recipe
    card = load_card(recipe)
    scan = get_scanner(recipe)(Path(raw_dir))
    if not scan.sources:
        raise CorpusLayoutError(raw_dir, f"no {corpus} clips found ({len(scan.rejects)} files refused); "
                                         f"expected layout: {' '.join(card.layout.split())}")
    check_output(Path(out), Path(raw_dir))
    result = build_manifest(scan, card, params.ingest)
    manifest = write_manifest(result.rows, out, result.quarantine)
    for q in result.quarantine:
        log.info("quarantined %s: %s", q.path, q.reason)
    return IngestSummary(
        corpus=corpus,
        manifest_path=manifest,
        quarantine_path=quarantine_path(manifest),
        n_clips=len(result.rows),
        n_quarantined=len(result.quarantine),
        n_skipped=result.skipped,
        n_speakers=len({r.speaker for r in result.rows}),
        hours=sum(r.duration_s for r in result.rows) / 3600.0,
        splits=dict(Counter(r.split for r in result.rows)),
    )


def check_output(out: Path, raw_dir: Path) -> None:
    """Refuse a manifest path that would overwrite or land inside the input corpus (its labels,
    its media) or that is not a ``.parquet`` file (the audit and DVC tell manifests by suffix)."""
    if out.suffix != ".parquet":
        raise ConfigError(out, "the manifest must be a .parquet file")
    if out.exists() and out.is_dir():
        raise ConfigError(out, "is a directory; give the manifest's file name")
    if raw_dir.exists() and is_inside(out, raw_dir):
        raise ConfigError(out, f"lies inside the input corpus {raw_dir}; write the manifest elsewhere "
                               "(ingest never writes into the corpus it reads)")
