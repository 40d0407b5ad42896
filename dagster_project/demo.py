"""`make demo` and `make quality`: the whole flow on one corpus partition, through Dagster.

Generates the SynthTalk corpus of the partition (``--corpus``: the demo's ``synthtalk`` by
default; ``synthtalk_large``, a corpus profile in params.yaml, is the quality run), materializes
every asset of it (local Ray, MLflow on SQLite, local storage), then voices a test clip of an
unseen speaker with the champion and prints the evaluation's ladder table, where everything is and
how to open the Dagster and MLflow UIs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the project root


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dagster_project.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="corpus partition (default: params.yaml pipeline.corpus)")
    args = ap.parse_args(argv)

    from dagster_project.defs.partitions import corpus_names
    from imagintalk.config import load_params
    from imagintalk.errors import ConfigError, ImaginTalkError

    try:  # the partition and its params, checked before anything is set up or started
        base = load_params()
        corpus = args.corpus or base.pipeline.corpus
        if corpus not in corpus_names():
            raise ConfigError(corpus, f"unknown corpus partition (choose from {', '.join(corpus_names())})")
        params = base.for_corpus(corpus)
    except ImaginTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    os.chdir(REPO)
    os.environ.setdefault("DAGSTER_HOME", str(REPO / ".dagster_home"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)

    import dagster as dg
    from rich.console import Console

    from dagster_project.definitions import defs
    from imagintalk.corpora.manifest import read_manifest
    from pipelines.registry import stage_paths
    from pipelines.speak import speak_video

    console = Console()
    paths = stage_paths(params, corpus)
    t0 = time.time()
    console.rule(f"[bold]ImaginTalk demo: corpus {corpus!r}, model size {params.pipeline.model_size!r}")
    job = defs.resolve_job_def("full_pipeline")
    result = job.execute_in_process(partition_key=corpus, instance=dg.DagsterInstance.get(),
                                    raise_on_error=False)
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        if failed == ["promote"]:  # the model was evaluated; the gate refused it: show what it scored
            _print_evaluation(Path(paths["reports"]))
        console.print(f"[red]error: pipeline failed at {', '.join(failed) or 'a step'}; see the Dagster log above")
        return 1

    test_rows = [r for r in read_manifest(paths["manifest"]) if r.split == "test"]
    out_dir = REPO / "demo_out"
    out_dir.mkdir(exist_ok=True)
    clip = Path(test_rows[0].video_path)
    stem = f"{test_rows[0].speaker}_{clip.stem}"
    wav, dubbed = out_dir / f"{stem}.wav", out_dir / f"{stem}_dubbed.mp4"
    speak_video(clip, out=wav, dub=dubbed, model="models:/imagintalk@champion", params=params)

    reports = Path(paths["reports"])
    console.rule(f"[bold green]demo finished in {time.time() - t0:.0f} s")
    rows = [
        ("corpus (raw)", paths["raw_dir"]), ("manifest", paths["manifest"]), ("shards", paths["shards"]),
        ("manifest audit (GX data docs)", str(reports / "audit_manifest")),
        ("shard audit (GX data docs)", str(reports / "audit_shards")),
        ("evaluation report (HTML)", str(reports / "evaluation" / "report.html")),
        ("promotion decision", str(reports / "promotion.json")),
        ("registered models", f"{os.environ['MLFLOW_TRACKING_URI']}  (imagintalk-<stage>, imagintalk@champion)"),
        (f"generated speech for unseen speaker {test_rows[0].speaker}", str(wav)),
        ("dubbed video", str(dubbed)),
        ("Dagster UI", "make dagster-ui  (dagster dev -m dagster_project.definitions, DAGSTER_HOME=.dagster_home)"),
        ("MLflow UI", "make mlflow-ui    (or: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db)"),
    ]
    for what, where in rows:  # plain print: paths must not be wrapped or styled away
        print(f"  {what:<45} {where}")
    _print_evaluation(reports)
    return 0


def _print_evaluation(reports: Path) -> None:
    """The evaluation's ladder table (metrics.md) and the gate's decision, when they exist."""
    table = reports / "evaluation" / "metrics.md"
    if table.is_file():
        print(f"\nevaluation on the unseen test speakers ({table}):\n")
        print(table.read_text().split("\n", 2)[-1])
    decision = reports / "promotion.json"
    if decision.is_file():
        print(f"promotion: {json.loads(decision.read_text()).get('reason', '')} ({decision})")


if __name__ == "__main__":
    sys.exit(main())
