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
