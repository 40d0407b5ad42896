"""Make a SynthTalk corpus of a given size under its own root, stage by stage, with timings.

Runs raw_corpus, ingest, audit_manifest, fit_unit_tokenizer, fit_codec, shard and audit_shards
in-process with ``params.yaml`` (2 val / 2 test speakers, 2 workers), every pipeline path
prefixed with ROOT; the shards land in ROOT/datasets/synthtalk/shards.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imagintalk.config import load_params
from pipelines.registry import run_stage

STAGES = ("raw_corpus", "ingest", "audit_manifest", "fit_unit_tokenizer", "fit_codec", "shard", "audit_shards")


def parse_args():
    """Command line: speakers, clips per speaker, root."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("speakers", type=int, help="number of speakers")
    ap.add_argument("clips", type=int, help="clips per speaker")
    ap.add_argument("root", nargs="?", default="/tmp/exp/c16", help="prefix of every pipeline path")
    ap.add_argument("--workers", type=int, default=2, help="synth and shard workers")
    ap.add_argument("--val-speakers", type=int, default=2)
    ap.add_argument("--test-speakers", type=int, default=2)
    return ap.parse_args()


def corpus_params(args):
    """params.yaml with the corpus size, speaker splits, workers and root of ``args``."""
    params = load_params()
    d = params.model_dump()
    d["synth"].update(speakers=args.speakers, clips_per_speaker=args.clips, val_speakers=args.val_speakers,
                      test_speakers=args.test_speakers, workers=args.workers)
    for k in ("raw_dir", "manifest", "shards", "reports", "models"):
        d["pipeline"][k] = f"{args.root}/" + d["pipeline"][k]
    d["shards"]["workers"] = args.workers
    return type(params).model_validate(d)


def main():
    """Run the data stages and print each one's wall time and summary."""
    params = corpus_params(parse_args())
    for stage in STAGES:
        t = time.time()
        result = run_stage(stage, "synthtalk", params)
        summary = getattr(result, "summary_line", lambda: "")()
        print(stage, f"{time.time() - t:.1f}s", summary, flush=True)


if __name__ == "__main__":  # the stages spawn worker processes
    main()
