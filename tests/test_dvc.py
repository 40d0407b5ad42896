"""`dvc repro` runs the registry's stages through `python -m pipelines.run`; a second repro does
nothing; `dvc push` sends the tracked data to the remote; what Dagster materializes, DVC records
(`dvc status` clean, `dvc repro` reruns nothing). Run on a copy of the repository with tiny params
(the data half of the graph: corpus → audited shards)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TARGET = "audit_shards"


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("IMAGINTALK_PARAMS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _tiny_repo(tmp_path: Path) -> Path:
    """A git + DVC copy of the repository whose params.yaml makes the data half tiny."""
    repo = tmp_path / "repo"
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["synth"].update({"speakers": 3, "clips_per_speaker": 2, "val_speakers": 1, "test_speakers": 1})
    params["tokenizer"]["k"] = 8
    params["codec"].update({"levels": 2, "codebook_size": 8})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        assert _run(cmd, repo).returncode == 0
    return repo


def test_dvc_repro_twice_and_push(tmp_path):
    repo = _tiny_repo(tmp_path)
    dvc = str(Path(sys.executable).parent / "dvc")
    first = _run([dvc, "repro", TARGET], repo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("raw_corpus", "ingest", "audit_manifest", "fit_unit_tokenizer", "fit_codec", "shard", TARGET):
        assert f"Running stage '{stage}'" in first.stdout
    assert (repo / "datasets/synthtalk/shards/index.json").is_file()
    assert (repo / "dvc.lock").is_file()

    second = _run([dvc, "repro", TARGET], repo)
    assert second.returncode == 0 and "Running stage" not in second.stdout
    assert "up to date" in second.stdout

    push = _run([dvc, "push", "-r", "local"], repo)
    assert push.returncode == 0, push.stderr[-2000:]
    assert any((repo / ".dvc-remote").rglob("*")), "remote received nothing"


def test_dagster_materialization_is_recorded_by_dvc(tmp_path, monkeypatch):
    """Dagster materializes the first stages of the partition dvc.yaml describes; DVC then calls
    them up to date (`dvc status` clean, `dvc repro` reruns nothing); stages Dagster did not run
    stay changed; another partition is not DVC's to record."""
    import dagster as dg

    from dagster_project.defs.assets import ASSETS
    from dagster_project.defs.dvc_sync import record_stage
    from dagster_project.defs.resources import MLflowResource, ParamsResource, RayResource, StorageResource
    from imagintalk.config import load_params

    repo = _tiny_repo(tmp_path)
    dvc = str(Path(sys.executable).parent / "dvc")
    monkeypatch.chdir(repo)  # as `dagster dev` and `make demo` run: in the project root
    monkeypatch.delenv("IMAGINTALK_PARAMS", raising=False)
    done = ["raw_corpus", "ingest", "audit_manifest"]
    res = {"storage": StorageResource(root=str(tmp_path / "artifacts")), "ray": RayResource(),
           "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
           "params": ParamsResource(path=str(repo / "params.yaml"))}
    result = dg.materialize([a for a in ASSETS if a.key.to_user_string() in done], partition_key="synthtalk",
                            resources=res)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert all(meta[s]["dvc"].text.startswith("committed") for s in done)
    assert (repo / "dvc.lock").is_file()

    status = _run([dvc, "status", *done], repo)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    assert "fit_codec" in _run([dvc, "status", "fit_codec"], repo).stdout  # not run: still changed
    again = _run([dvc, "repro", "audit_manifest"], repo)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout[-2000:]

    params = load_params(repo / "params.yaml")
    assert record_stage("ingest", "grid", repo / "params.yaml", params) is None  # not the DVC partition
    assert record_stage("ingest", "synthtalk", tmp_path / "other.yaml", params) is None
