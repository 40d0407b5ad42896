"""`imagintalk ingest` end to end through the typer app: summary line and exit 0 on a good tree,
one `error:` line and exit 1 on a bad root or corpus name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_corpora_recipes import build_synthtalk
from typer.testing import CliRunner

from imagintalk.config import Params
from imagintalk.corpora.manifest import read_manifest, read_quarantine
from pipelines.cli import app


@pytest.fixture
def params_file(tmp_path) -> Path:
    """The code's default params, so the test does not depend on the repo's params.yaml."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(Params().model_dump(mode="json")))
    return path


def test_ingest_command_writes_manifest_and_prints_one_summary_line(tmp_path, params_file):
    build_synthtalk(tmp_path / "st")
    (tmp_path / "st" / "train" / "spk00" / "broken.mp4").write_bytes(b"\0" * 100)
    out = tmp_path / "m.parquet"
    res = CliRunner().invoke(app, ["ingest", "synthtalk", str(tmp_path / "st"), "--out", str(out),
                                   "--params", str(params_file)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[-1].startswith("ingest synthtalk: 4 clips (train 2 / val 1 / test 1), 3 speakers")
    assert "1 quarantined" in lines[-1]
    assert len(read_manifest(out)) == 4 and len(read_quarantine(out)) == 1


@pytest.mark.parametrize("args,expect", [
    (["synthtalk", "{tmp}/does-not-exist"], "root does not exist"),
    (["synthtalk", "{tmp}/empty"], "no synthtalk clips found"),
    (["timit", "{tmp}/empty"], "no corpus card for 'timit'"),
])
def test_ingest_command_exits_1_with_one_error_line_on_bad_input(tmp_path, params_file, args, expect):
    (tmp_path / "empty").mkdir()
    argv = ["ingest", *(a.format(tmp=tmp_path) for a in args), "--out", str(tmp_path / "m.parquet"),
            "--params", str(params_file)]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0]
    assert not (tmp_path / "m.parquet").exists()
