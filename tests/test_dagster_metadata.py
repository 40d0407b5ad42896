"""Dagster as its users expect: `dagster` finds the definitions from the project root
([tool.dagster] in pyproject.toml); every asset has a code version; materializations carry a data
version and MLflow links; the evaluation's asset check is the gate's floors; resources reach the
stage functions as explicit settings, not through os.environ."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from dagster_project.defs.assets import ASSETS, FLOORS_CHECK
from dagster_project.defs.checks import floors_check
from dagster_project.defs.metadata import data_version, result_metadata
from imagintalk.config import MetricFloor, Params, PromoteConfig
from imagintalk.registry import tracking
from imagintalk.registry.versions import RegisteredVersion
from imagintalk.settings import ENV_STORAGE_ROOT, get_settings, given_setting, using_settings

REPO = Path(__file__).resolve().parent.parent


def test_dagster_cli_in_the_project_root_needs_no_module_flag():
    dagster = str(Path(sys.executable).parent / "dagster")
    proc = subprocess.run([dagster, "definitions", "validate"], cwd=REPO, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imagintalk" in proc.stderr + proc.stdout  # the code location named in pyproject.toml


def test_every_asset_has_a_code_version_and_the_evaluation_a_floors_check():
    versions = {a.key.to_user_string(): a.code_versions_by_key[a.key] for a in ASSETS}
    assert all(v and len(v) == 16 for v in versions.values())
    assert versions["shard"] != versions["ingest"]
    evaluate = next(a for a in ASSETS if a.key.to_user_string() == "evaluate")
    assert [c.name for c in evaluate.check_specs] == [FLOORS_CHECK]


@dataclass
class _Shards:
    content_hash: str


@dataclass
class _Trained:
    version: RegisteredVersion

    def summary_line(self) -> str:
        return "trained"


def test_data_version_and_mlflow_links_come_from_the_stage_result():
    assert data_version(_Shards("abc123")) == dg.DataVersion("abc123")
    trained = _Trained(RegisteredVersion("imagintalk-vocoder", "3", "r0123"))
    assert data_version(trained) == dg.DataVersion("imagintalk-vocoder/3")
    with using_settings(mlflow_tracking_uri="http://mlflow.example:5000"):
        meta = result_metadata(trained)
    assert meta["summary"] == "trained"
    assert meta["mlflow_run"].value == "http://mlflow.example:5000/#/runs/r0123"
    assert meta["model_version_page"].value.endswith("#/models/imagintalk-vocoder/versions/3")
    assert meta["model_version"].value == "models:/imagintalk-vocoder/3"


@dataclass
class _Evaluated:
    model_uri: str
    version: str | None


def test_floors_check_applies_the_gates_floors_to_the_evaluated_version(tmp_path):
    floors = {"default": [MetricFloor(metric="wer", max=0.5)]}
    params = Params().model_copy(update={"promote": PromoteConfig.model_validate({"floors": floors})})
    with using_settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"):
        c = tracking.client()
        c.create_registered_model("imagintalk")
        good = c.create_model_version("imagintalk", source=str(tmp_path), tags={"eval.wer": "0.3"}).version
        bad = c.create_model_version("imagintalk", source=str(tmp_path), tags={"eval.wer": "0.7"}).version
        ok = floors_check(_Evaluated(f"models:/imagintalk/{good}", str(good)), params)
        below = floors_check(_Evaluated(f"models:/imagintalk/{bad}", str(bad)), params)
    assert ok.passed and not below.passed
    assert "wer 0.7" in below.description and "<= 0.5" in below.description


def test_settings_given_explicitly_override_the_environment_only_inside_the_block(monkeypatch):
    monkeypatch.setenv(ENV_STORAGE_ROOT, "/env/root")
    with using_settings(storage_root="s3://bucket/x", ray_address=""):
        assert get_settings().storage_root == "s3://bucket/x" and given_setting("storage_root") == "s3://bucket/x"
        assert os.environ[ENV_STORAGE_ROOT] == "/env/root"
    assert get_settings().storage_root == "/env/root"
    monkeypatch.delenv(ENV_STORAGE_ROOT)
    assert given_setting("storage_root") is None
