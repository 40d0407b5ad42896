"""`dvc repro` runs the registry's stages through `python -m pipelines.run`; a second repro does
nothing; `dvc push` sends the tracked data to the remote. Run on a copy of the repository with tiny
params (the data half of the graph: corpus → audited shards)."""

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


def test_dvc_repro_twice_and_push(tmp_path):
    repo = tmp_path / "repo"
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["synth"].update({"speakers": 3, "clips_per_speaker": 2})
    params["tokenizer"]["k"] = 8
    params["codec"].update({"levels": 2, "codebook_size": 8})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        assert _run(cmd, repo).returncode == 0

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
