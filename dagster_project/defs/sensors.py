"""Retraining on new data: a sensor fingerprints each corpus's raw folder and, when clips were
added or changed, requests a run of the affected partition (ingest → … → promote)."""


import hashlib
import json
from pathlib import Path

import dagster as dg

from dagster_project.defs.jobs import retrain_job
from dagster_project.defs.partitions import corpus_names
from imagintalk.config import load_params
from imagintalk.conventions import MEDIA_SUFFIXES
from pipelines.registry import stage_paths


def raw_fingerprint(root: Path) -> str | None:
    """Hash of (relative path, size, mtime) of every media file; None when the folder is absent."""
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dg.sensor(job=retrain_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def new_raw_clips_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    params = load_params()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    requests = []
    for corpus in corpus_names():
        fp = raw_fingerprint(Path(stage_paths(params, corpus)["raw_dir"]))
        if fp is None or seen.get(corpus) == fp:
            continue
        if corpus in seen:  # first sight records the state; a change afterwards triggers retraining
            requests.append(dg.RunRequest(run_key=f"{corpus}-{fp}", partition_key=corpus,
                                          tags={"imagintalk/raw_fingerprint": fp}))
        seen[corpus] = fp
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
