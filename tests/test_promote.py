"""The promotion gate against a real MLflow registry (SQLite in tmp): aliases, tags, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from imagintalk.config import GateMetric, Params, PromoteConfig
from imagintalk.registry import tracking
from imagintalk.registry.gate import audit_status, compare_metrics
from imagintalk.registry.versions import RegistryError, alias_version
from pipelines.promote import PROMOTE_EXPERIMENT, promote_model


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> str:
    """One SQLite tracking store for the module; each test uses its own model name."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def add_version(name: str, tmp: Path, **tags: str) -> str:
    c = tracking.client()
    if not c.search_registered_models(f"name = '{name}'"):
        c.create_registered_model(name)
    src = tmp / f"{name}-src"
    src.mkdir(exist_ok=True)
    mv = c.create_model_version(name, source=str(src), tags=tags)
    return str(mv.version)


def good(wer: float, sim: float, audit: str = "true") -> dict[str, str]:
    return {"eval.wer": str(wer), "eval.speaker_sim": str(sim), "audit.passed": audit}


def test_first_evaluated_audited_challenger_becomes_champion(registry, tmp_path):
    v1 = add_version("m-first", tmp_path, **good(0.5, 0.6))
    result = promote_model("m-first", params=Params())
    assert result.promoted and result.decision == "first-champion"
    c = tracking.client()
    assert str(alias_version(c, "m-first", "champion").version) == v1
    assert c.get_model_version("m-first", v1).tags["gate.decision"] == "first-champion"


def test_better_challenger_replaces_champion_and_keeps_previous_alias(registry, tmp_path):
    v1 = add_version("m-better", tmp_path, **good(0.5, 0.6))
    assert promote_model("m-better", params=Params()).promoted
    v2 = add_version("m-better", tmp_path, **good(0.4, 0.61))
    c = tracking.client()
    c.set_registered_model_alias("m-better", "challenger", v2)
    result = promote_model("m-better", params=Params())
    assert result.promoted and result.decision == "promoted" and result.champion_before == v1
    assert str(alias_version(c, "m-better", "champion").version) == v2
    assert str(alias_version(c, "m-better", "previous-champion").version) == v1
    assert alias_version(c, "m-better", "challenger") is None  # consumed by the win
    old = c.get_model_version("m-better", v1).tags
    assert old["gate.challenged_by"] == v2 and old["gate.replaced_by"] == v2
    comparison = json.loads(c.get_model_version("m-better", v2).tags["gate.comparison"])
    assert {row["name"] for row in comparison} == {"wer", "speaker_sim"}


def test_worse_challenger_is_refused_visibly_and_cli_exits_1(registry, tmp_path):
    from imagintalk.cli.main import app

    v1 = add_version("m-worse", tmp_path, **good(0.3, 0.7))
    assert promote_model("m-worse", params=Params()).promoted
    v2 = add_version("m-worse", tmp_path, **good(0.45, 0.72))  # sim better, WER worse
    params_file = tmp_path / "params.yaml"  # the defaults, independent of the repo's params.yaml
    params_file.write_text(yaml.safe_dump(Params().model_dump(mode="json")))
    res = CliRunner().invoke(app, ["promote", "--model", "m-worse", "--params", str(params_file)])
    assert res.exit_code == 1, res.output
    assert "REFUSED" in res.output and "wer" in res.output
    c = tracking.client()
    assert str(alias_version(c, "m-worse", "champion").version) == v1
    refused = c.get_model_version("m-worse", v2).tags
    assert refused["gate.decision"] == "refused" and "wer" in refused["gate.reason"]
    assert c.get_model_version("m-worse", v1).tags["gate.challenge_decision"] == "refused"
    exp = c.get_experiment_by_name(PROMOTE_EXPERIMENT)
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`model.name` = 'm-worse'")
    latest = max(runs, key=lambda r: r.info.start_time)
    assert latest.data.tags["gate.decision"] == "refused" and latest.data.metrics["promoted"] == 0.0


def test_unaudited_or_unevaluated_challenger_is_refused(registry, tmp_path):
    add_version("m-audit", tmp_path, **good(0.3, 0.7, audit="false"))
    result = promote_model("m-audit", params=Params())
    assert not result.promoted and "audit failed" in result.reason
    add_version("m-audit", tmp_path, **{"audit.passed": "true", "eval.wer": "0.2"})
    result = promote_model("m-audit", params=Params())
    assert not result.promoted and "eval.speaker_sim" in result.reason
    assert alias_version(tracking.client(), "m-audit", "champion") is None


def test_audit_result_json_under_data_root_counts_when_no_tag(registry, tmp_path):
    shards = tmp_path / "shards"
    (shards / "audit").mkdir(parents=True)
    (shards / "audit" / "result.json").write_text(json.dumps({"passed": True}))
    tags = {"eval.wer": "0.3", "eval.speaker_sim": "0.5", "data.shards": str(shards)}
    add_version("m-json", tmp_path, **tags)
    assert promote_model("m-json", params=Params()).promoted
    (shards / "audit" / "result.json").write_text(json.dumps({"passed": False}))
    passed, source = audit_status(tags, PromoteConfig())
    assert passed is False and source.endswith("result.json")


def test_explicit_version_rolls_back_to_previous_champion(registry, tmp_path):
    v1 = add_version("m-roll", tmp_path, **good(0.5, 0.5))
    promote_model("m-roll", params=Params())
    v2 = add_version("m-roll", tmp_path, **good(0.2, 0.6))
    assert promote_model("m-roll", params=Params()).promoted
    result = promote_model("m-roll", version=v1, params=Params())
    assert result.promoted and result.decision == "rollback"
    c = tracking.client()
    assert str(alias_version(c, "m-roll", "champion").version) == v1
    assert str(alias_version(c, "m-roll", "previous-champion").version) == v2


def test_unknown_model_is_a_one_line_registry_error(registry):
    with pytest.raises(RegistryError, match="no registered version"):
        promote_model("m-missing", params=Params())


def test_gate_margin_and_strict_improvement_rules():
    cfg = PromoteConfig(metrics=[GateMetric(name="wer", higher_is_better=False, margin=-0.01),
                                 GateMetric(name="speaker_sim", higher_is_better=True, margin=0.0)])
    champ = {"eval.wer": "0.30", "eval.speaker_sim": "0.50"}
    # a WER regression inside the tolerance is accepted when similarity improves
    assert compare_metrics({"eval.wer": "0.305", "eval.speaker_sim": "0.55"}, champ, cfg).passed
    assert not compare_metrics({"eval.wer": "0.32", "eval.speaker_sim": "0.55"}, champ, cfg).passed
    # identical numbers: nothing strictly better, so no churn
    same = compare_metrics(dict(champ), champ, cfg)
    assert not same.passed and "no gate metric improves" in same.reason
    assert compare_metrics(dict(champ), champ, cfg.model_copy(update={"require_strict_improvement": False})).passed
    assert not compare_metrics({"eval.wer": "nan", "eval.speaker_sim": "0.9"}, champ, cfg).passed
