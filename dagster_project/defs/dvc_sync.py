"""One truth of what is up to date: a stage Dagster materializes is recorded by DVC as well.

``dvc.yaml`` describes the default corpus partition of the repo's own params.yaml. When an asset of
that partition succeeds in a DVC project, its DVC stage is committed (``dvc commit -f STAGE``:
deps, params and outs hashed into ``dvc.lock``, outs into the cache), so ``dvc status`` agrees
with Dagster afterwards, ``dvc repro`` reruns nothing and ``dvc push`` has the data to send.
Anything else (another partition, another params file, outputs elsewhere, no ``.dvc``) is not
DVC's to record and is left alone. DVC takes one lock per repository: parallel steps wait their
turn for a while; a repository held longer (a running ``dvc repro``) is reported, not fatal.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from imagintalk.config import Params
from pipelines.registry import dvc_document

LOCK_WAIT_S = 120.0  # how long a commit waits for another DVC process's lock


def dvc_root(params_path: Path) -> Path | None:
    """The DVC project whose params.yaml the run read, or None (DVC tracks no other file)."""
    root = params_path.resolve().parent
    ok = params_path.name == "params.yaml" and (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()
    return root if ok else None


def describes(root: Path, stage: str, corpus: str, params: Params) -> bool:
    """True when ``root``'s dvc.yaml stage is the one this run made: the default partition, its
    outputs where this process wrote them (paths relative to the working directory)."""
    if corpus != params.pipeline.corpus:
        return False
    declared = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {}).get(stage)
    ours = dvc_document(params)["stages"].get(stage)
    if declared is None or ours is None:
        return False
    where = [(root / o).resolve() for o in declared.get("outs", [])]
    return where == [Path(o).resolve() for o in ours.get("outs", [])]


def record_stage(stage: str, corpus: str, params_path: Path, params: Params) -> str | None:
    """Commit ``stage`` to DVC when DVC describes it; returns what happened (None: not DVC's)."""
    root = dvc_root(params_path)
    if root is None or not describes(root, stage, corpus, params):
        return None
    from dvc.lock import LockError
    from dvc.repo import Repo

    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            with Repo(str(root)) as repo:
                repo.commit(stage, force=True)
            return f"committed to {root / 'dvc.lock'}"
        except LockError:
            if time.monotonic() > deadline:
                return (f"not recorded: another DVC process holds {root} (run `dvc commit -f {stage}` "
                        "when it is done)")
            time.sleep(1.0)
