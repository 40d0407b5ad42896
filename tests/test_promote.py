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
    from pipelines.cli import app

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


LARGE_FLOORS = {"synthtalk_large": [
    {"metric": "wer", "max": 0.30}, {"metric": "resynthesis.wer", "max": 0.10},
    {"metric": "uer", "relative_to": "no_refinement.uer", "max": -0.01},
    {"metric": "dnsmos_p808", "relative_to": "ground_truth.dnsmos_p808", "min": -0.4}],
    "default": [{"metric": "wer", "max": 0.95}]}


def test_floors_absolute_relative_and_default_by_eval_corpus():
    cfg = PromoteConfig.model_validate({"floors": LARGE_FLOORS})
    ok = {"eval.corpus": "synthtalk_large", "eval.wer": "0.2", "eval.speaker_sim": "0.8",
          "eval.resynthesis.wer": "0.05", "eval.uer": "0.40", "eval.no_refinement.uer": "0.60",
          "eval.dnsmos_p808": "3.0", "eval.ground_truth.dnsmos_p808": "3.25"}
    first = compare_metrics(ok, None, cfg)
    assert first.passed and "all 4 floors of synthtalk_large met" in first.reason
    # the error detector changes nothing (the 0.89 vs 0.89): below the relative floor
    bad = compare_metrics({**ok, "eval.uer": "0.60", "eval.dnsmos_p808": "2.7"}, None, cfg)
    assert not bad.passed and bad.reason.startswith("below the floors of synthtalk_large")
    assert "uer 0.6, needs <= no_refinement.uer -0.01 (= 0.59)" in bad.reason
    assert "dnsmos_p808 2.7, needs >= ground_truth.dnsmos_p808 -0.4 (= 2.85)" in bad.reason
    assert [f.passed for f in bad.floors] == [True, True, False, False]
    missing = compare_metrics({k: v for k, v in ok.items() if k != "eval.resynthesis.wer"}, None, cfg)
    assert not missing.passed and "resynthesis.wer not evaluated" in missing.reason
    # a corpus without its own floors gets the default ones; floors come before the champion
    other = {"eval.corpus": "grid", "eval.wer": "0.97", "eval.speaker_sim": "0.9"}
    refused = compare_metrics(other, {"eval.wer": "0.99", "eval.speaker_sim": "0.1"}, cfg)
    assert not refused.passed and "below the floors of grid: wer 0.97, needs <= 0.95" in refused.reason
    assert "no floors for corpus grid" in compare_metrics(other, None, PromoteConfig(floors={"x": []})).reason


def test_first_challenger_below_its_floors_is_refused_with_the_reason_in_promotion_json(registry, tmp_path):
    params = Params().model_copy(update={"promote": PromoteConfig.model_validate({"floors": LARGE_FLOORS})})
    add_version("m-floor", tmp_path, **good(0.79, 0.53), **{"eval.corpus": "synthtalk"})
    result = promote_model("m-floor", params=params, decision_path=tmp_path / "promotion.json")
    assert result.promoted  # default floor: wer <= 0.95
    v2 = add_version("m-floor-large", tmp_path, **good(0.79, 0.53), **{"eval.corpus": "synthtalk_large"})
    result = promote_model("m-floor-large", params=params, decision_path=tmp_path / "promotion.json")
    assert not result.promoted and result.decision == "refused"
    assert alias_version(tracking.client(), "m-floor-large", "champion") is None
    body = json.loads((tmp_path / "promotion.json").read_text())
    assert "below the floors of synthtalk_large: wer 0.79, needs <= 0.3" in body["summary"]
    assert "\n" not in body["summary"] and {f["metric"] for f in body["floors"]} >= {"wer", "resynthesis.wer"}
    tags = tracking.client().get_model_version("m-floor-large", v2).tags
    assert json.loads(tags["gate.floors"])[0] == {"metric": "wer", "value": 0.79, "bound": "<= 0.3", "passed": False}


@pytest.mark.parametrize(("floors", "message"), [
    ({"synthtalk": [{"metric": "wre", "max": 0.5}]},
     "promote.floors.synthtalk.0.metric: Value error, unknown metric 'wre'"),
    ({"synthtalk": [{"metric": "wer"}]}, "promote.floors.synthtalk.0: Value error, floor on wer needs min or max"),
    ({"synthtalk": [{"metric": "uer", "max": 0, "relative_to": "no_refine.uer"}]},
     "promote.floors.synthtalk.0.relative_to: Value error, unknown variant 'no_refine'"),
])
def test_bad_floors_are_a_one_line_error_naming_the_input(tmp_path, floors, message):
    from pipelines.cli import app

    params_file = tmp_path / "params.yaml"
    doc = Params().model_dump(mode="json")
    doc["promote"]["floors"] = floors
    params_file.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(app, ["promote", "--model", "m-any", "--params", str(params_file)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(params_file) in lines[0], res.output
    assert message in lines[0], lines[0]
