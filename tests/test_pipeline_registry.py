"""The stage registry is the single source of truth: dvc.yaml and Dagster come from it, and every
stage's wiring binds to its function's real signature."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from imagintalk.config import load_params
from pipelines.registry import STAGES, dvc_document, dvc_yaml_text, stage_paths

REPO = Path(__file__).resolve().parent.parent


def test_committed_dvc_yaml_is_the_generated_one():
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == dvc_yaml_text(load_params(REPO / "params.yaml")), \
        "dvc.yaml is stale: run `imagintalk dvc-yaml` and commit it"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_call_binds_to_the_function_signature(stage):
    params = load_params(REPO / "params.yaml")
    kwargs = stage.call(stage_paths(params), params)
    inspect.signature(stage.function()).bind(**kwargs)  # raises TypeError on any drift


def test_dvc_stages_read_only_declared_param_sections_and_chain_outputs():
    params = load_params(REPO / "params.yaml")
    doc = dvc_document(params)
    sections = set(params.model_dump())
    produced: set[str] = set()
    for name, st in doc["stages"].items():
        for key in st.get("params", []):
            assert key.split(".")[0] in sections, f"{name} reads unknown params section {key}"
        for dep in st.get("deps", []):
            if dep.startswith(("datasets/", "reports/", "artifacts/")):
                assert any(dep == o or dep.startswith(o + "/") for o in produced), f"{name}: {dep} made by no stage"
        produced.update(st.get("outs", []))
    assert yaml.safe_load(dvc_yaml_text(params)) == doc


def test_every_upstream_is_a_registered_stage_in_order():
    seen: set[str] = set()
    for st in STAGES:
        assert set(st.upstream) <= seen, f"{st.name} runs before {set(st.upstream) - seen}"
        seen.add(st.name)


# ------------------------------------------------------------------ the one model-stage graph


def _needs() -> list[tuple[str, str]]:
    from imagintalk.train.graph import STAGES as GRAPH
    from imagintalk.train.graph import upstream

    return [(stage, need) for stage in GRAPH for need in upstream(stage)]


def test_graph_declares_that_the_detector_needs_the_aligner_and_unit_bert():
    from imagintalk.train.graph import upstream

    assert set(upstream("error_detector")) == {"lip_aligner", "unit_bert"}


@pytest.mark.parametrize(("stage", "need"), _needs(), ids=lambda x: x)
def test_every_derived_artefact_carries_each_dependency(stage, need):
    """dvc.yaml, the Dagster asset graph, the training order and the k8s waves all derive from
    imagintalk.train.graph: removing a dependency from any of them fails here."""
    from dagster_project.defs.assets import ASSETS
    from imagintalk.train.graph import ORDER

    params = load_params(REPO / "params.yaml")
    models = stage_paths(params)["models"]
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert f"{models}/{need}.json" in committed[f"train_{stage}"]["deps"], f"dvc.yaml: train_{stage} misses {need}"
    (asset,) = [a for a in ASSETS if a.key.to_user_string() == f"train_{stage}"]
    deps = {k.to_user_string() for k in asset.asset_deps[asset.key]}
    assert f"train_{need}" in deps, f"Dagster: train_{stage} does not depend on train_{need}"
    assert ORDER.index(need) < ORDER.index(stage), f"training order runs {stage} before {need}"
    rayjobs = [d for d in yaml.safe_load_all((REPO / "infra/k8s/rayjob-train.yaml").read_text()) if d]
    wave = {d["metadata"]["labels"]["imagintalk.io/stage"]: int(d["metadata"]["labels"]["imagintalk.io/wave"])
            for d in rayjobs}
    assert wave[need] < wave[stage], f"k8s: {stage} runs in wave {wave[stage]}, {need} in {wave[need]}"


def test_cli_help_lists_the_training_order():
    from imagintalk.train.graph import ORDER
    from pipelines.cli import train

    help_text = inspect.signature(train).parameters["stage"].default.help
    assert help_text.split(" | ") == list(ORDER)
