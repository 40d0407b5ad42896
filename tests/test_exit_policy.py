"""One exit policy (pipelines/outcome.py): a refused promotion or a failed blocking audit stops the
pipeline from every entry point: the CLI and `python -m pipelines.run` (DVC's cmd) exit 1, the
Dagster asset fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from typer.testing import CliRunner

from imagintalk.config import Params
from imagintalk.errors import MediaError
from imagintalk.registry import tracking
from pipelines import run as pipelines_run
from pipelines.cli import app
from pipelines.outcome import EXIT_FAILED, EXIT_OK, run_and_report, stop_reason


@dataclass
class _Audit:
    passed: bool

    def summary_line(self) -> str:
        return f"audit passed={self.passed}"


@dataclass
class _Promotion:
    promoted: bool


def test_stop_reason_is_a_failed_audit_or_a_refused_promotion_and_nothing_else():
    assert stop_reason(_Audit(True)) is None and stop_reason(_Promotion(True)) is None
    assert stop_reason(object()) is None and stop_reason(None) is None
    assert stop_reason(_Audit(False)) == "audit passed=False"
    assert "refused" in stop_reason(_Promotion(False))


def test_run_and_report_prints_one_line_and_exits_1_on_bad_input():
    lines: list[tuple[str, bool]] = []

    def bad():
        raise MediaError("/x.mp4", "no video stream")

    assert run_and_report(bad, echo=lambda s, e: lines.append((s, e))) == (None, EXIT_FAILED)
    assert lines == [("error: /x.mp4: no video stream", True)]
    assert run_and_report(lambda: _Audit(True), echo=lambda s, e: None)[1] == EXIT_OK
    assert run_and_report(lambda: _Audit(False), echo=lambda s, e: None)[1] == EXIT_FAILED


def test_an_unexpected_exception_is_one_line_and_exit_1_not_a_traceback(monkeypatch):
    """A bug (not bad input) still ends in one line naming the command and the exception, exit 1;
    IMAGINTALK_DEBUG=1 keeps the traceback for whoever reports it."""
    lines: list[tuple[str, bool]] = []

    def shard_manifest():
        raise ValueError("all input arrays must have the same shape\nmore detail")

    monkeypatch.delenv("IMAGINTALK_DEBUG", raising=False)
    assert run_and_report(shard_manifest, echo=lambda s, e: lines.append((s, e))) == (None, EXIT_FAILED)
    ((line, err),) = lines
    assert err and "\n" not in line
    assert line.startswith("error: shard_manifest: unexpected ValueError: all input arrays")
    monkeypatch.setenv("IMAGINTALK_DEBUG", "1")
    with pytest.raises(ValueError):
        run_and_report(shard_manifest, echo=lambda s, e: None)


@pytest.fixture
def refused_registry(tmp_path, monkeypatch) -> Path:
    """A registry whose challenger is worse than the champion, and a params file whose pipeline
    paths lie in tmp_path; returns the params file."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    c = tracking.client()
    c.create_registered_model("imagintalk")
    (tmp_path / "src").mkdir()
    for wer in ("0.3", "0.45"):  # v1 champion, v2 a challenger with a worse WER
        mv = c.create_model_version("imagintalk", source=str(tmp_path / "src"),
                                    tags={"eval.wer": wer, "eval.speaker_sim": "0.7", "audit.passed": "true"})
        if str(mv.version) == "1":
            c.set_registered_model_alias("imagintalk", "champion", "1")
    c.set_registered_model_alias("imagintalk", "challenger", "2")
    doc = Params().model_dump(mode="json")
    doc["pipeline"]["reports"] = str(tmp_path / "reports")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("IMAGINTALK_PARAMS", str(params_file))
    return params_file


def test_refused_promotion_exits_1_from_cli_and_from_dvc_cmd(refused_registry, capsys):
    res = CliRunner().invoke(app, ["promote", "--params", str(refused_registry)])
    assert res.exit_code == 1 and "REFUSED" in res.output, (res.output, res.exception)
    assert pipelines_run.main(["promote"]) == 1
    assert "REFUSED" in capsys.readouterr().out
    assert (refused_registry.parent / "reports" / "promotion.json").is_file()  # the decision is still recorded


def test_refused_promotion_fails_the_dagster_asset(refused_registry, tmp_path):
    from dagster_project.defs.assets import ASSETS
    from dagster_project.defs.resources import MLflowResource, ParamsResource, RayResource, StorageResource

    promote = [a for a in ASSETS if a.key.to_user_string() == "promote"]
    resources = {"storage": StorageResource(root=str(tmp_path / "artifacts")), "ray": RayResource(),
                 "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
                 "params": ParamsResource(path=str(refused_registry))}
    result = dg.materialize(promote, partition_key="synthtalk", resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "REFUSED" in failure.step_failure_data.user_failure_data.description
