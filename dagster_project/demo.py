"""`make demo`: the whole flow on the embedded default, through Dagster.

Generates a small SynthTalk corpus, materializes every asset of the corpus partition (local Ray,
MLflow on SQLite, local storage), then voices a test clip of an unseen speaker with the champion
and prints where everything is and how to open the Dagster and MLflow UIs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the project root


def main() -> int:
    os.chdir(REPO)
    os.environ.setdefault("DAGSTER_HOME", str(REPO / ".dagster_home"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)

    import dagster as dg
    from rich.console import Console

    from dagster_project.definitions import defs
    from imagintalk.config import load_params
    from imagintalk.corpora.manifest import read_manifest
    from pipelines.registry import stage_paths
    from pipelines.speak import speak_video

    console = Console()
    params = load_params()
    corpus = params.pipeline.corpus
    paths = stage_paths(params, corpus)
    t0 = time.time()
    console.rule(f"[bold]ImaginTalk demo: corpus {corpus!r}, model size {params.pipeline.model_size!r}")
    job = defs.get_job_def("full_pipeline")
    result = job.execute_in_process(partition_key=corpus, instance=dg.DagsterInstance.get(),
                                    raise_on_error=False)
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
