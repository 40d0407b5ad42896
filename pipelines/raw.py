"""The raw corpus stage: SynthTalk is generated; every other corpus is obtained by the user (its
card in datasets/ says where) and only checked for presence here, so a Dagster partition or a
`dvc repro` on a missing corpus stops with a clear reason instead of ingesting nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagintalk.config import Params, load_params
from imagintalk.errors import CorpusLayoutError
from imagintalk.profiles import recipe_of


@dataclass
class RawCorpusSummary:
    corpus: str
    raw_dir: str
    n_files: int
    generated: bool

    def summary_line(self) -> str:
        how = "generated" if self.generated else "present"
        return f"raw corpus {self.corpus}: {self.n_files} files {how} in {self.raw_dir}"


def prepare_raw_corpus(corpus: str, raw_dir: Path, params: Params | None = None) -> RawCorpusSummary:
    params = params or load_params()
    raw_dir = Path(raw_dir)
    if recipe_of(params, corpus) == "synthtalk":
        from pipelines.synth import synth_corpus

        synth_corpus(raw_dir, params=params)
        generated = True
    else:
        if not raw_dir.is_dir() or not any(raw_dir.iterdir()):
            raise CorpusLayoutError(raw_dir, f"corpus {corpus!r} is not there: obtain it as datasets/{corpus}.yaml "
                                             "describes and place it in this folder")
        generated = False
    n = sum(1 for p in raw_dir.rglob("*") if p.is_file())
    return RawCorpusSummary(corpus, str(raw_dir), n, generated)
