"""``python -m pipelines.run STAGE [--corpus NAME]``: run one registered stage (DVC's cmd).

Exits as the CLI does (pipelines/outcome.py): 1 on bad input, a failed blocking audit or a refused
promotion, so ``dvc repro`` stops there and records nothing for the stage."""

from __future__ import annotations

import argparse
import sys

from pipelines.outcome import run_and_report
from pipelines.registry import STAGE_BY_NAME, run_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.run", description=__doc__)
    ap.add_argument("stage", choices=sorted(STAGE_BY_NAME))
    ap.add_argument("--corpus", default=None, help="corpus partition (default params.yaml pipeline.corpus)")
    args = ap.parse_args(argv)
    return run_and_report(run_stage, args.stage, args.corpus)[1]


if __name__ == "__main__":
    sys.exit(main())
