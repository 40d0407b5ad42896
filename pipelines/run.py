"""``python -m pipelines.run STAGE [--corpus NAME]``: run one registered stage (DVC's cmd)."""

from __future__ import annotations

import argparse
import sys

from imagintalk.errors import ImaginTalkError
from pipelines.registry import STAGE_BY_NAME, run_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.run", description=__doc__)
    ap.add_argument("stage", choices=sorted(STAGE_BY_NAME))
    ap.add_argument("--corpus", default=None, help="corpus partition (default params.yaml pipeline.corpus)")
    args = ap.parse_args(argv)
    try:
        result = run_stage(args.stage, args.corpus)
    except ImaginTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    line = getattr(result, "summary_line", None)
    if callable(line):
        print(line())
    if getattr(result, "passed", True) is False:  # a blocking audit stops the pipeline
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
