"""Dagster: definitions load as `dagster dev` loads them; the data half of the graph materializes on
tiny SynthTalk through the same stage functions; the audit checks gate; the sensor sees new clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.defs.assets import ASSETS, GX_CHECK
from dagster_project.defs.resources import MLflowResource, ParamsResource, RayResource, StorageResource
from dagster_project.defs.sensors import new_raw_clips_sensor, raw_fingerprint
from imagintalk.conventions import MEDIA_SUFFIXES
from pipelines.registry import STAGES

REPO = Path(__file__).resolve().parent.parent
DATA_ASSETS = ["raw_corpus", "ingest", "audit_manifest", "fit_unit_tokenizer", "fit_codec", "shard", "audit_shards"]


def _params_file(tmp_path: Path, **synth) -> Path:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["synth"].update({"speakers": 3, "clips_per_speaker": 2, "val_speakers": 1, "test_speakers": 1, **synth})
    base["tokenizer"]["k"] = 8
    base["codec"].update({"levels": 2, "codebook_size": 8})
    root = tmp_path / "data"
    base["pipeline"].update({k: str(root / v) for k, v in base["pipeline"].items()
                             if k in ("raw_dir", "manifest", "shards", "reports", "models")})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _resources(params_path: Path, tmp_path: Path) -> dict:
    return {"storage": StorageResource(root=str(tmp_path / "artifacts")), "ray": RayResource(),
            "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
            "params": ParamsResource(path=str(params_path))}


def test_definitions_load_like_dagster_dev():
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m",
                           "dagster_project.definitions"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from dagster_project.definitions import defs

    repo = defs.get_repository_def()
    assert {s.name for s in STAGES} == {k.to_user_string() for k in repo.assets_defs_by_key}
    assert {"full_pipeline", "retrain_on_new_data", "nightly_audit"} <= {j.name for j in repo.get_all_jobs()}
    assert {"corpus"} != set() and "synthtalk" in repo.assets_defs_by_key[dg.AssetKey("ingest")] \
        .partitions_def.get_partition_keys()


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """The data half materialized once for the module: (root, params file, resources, result, the
    index as it was then). The new-clips test adds clips to it afterwards; others read the snapshot."""
    root = tmp_path_factory.mktemp("dagster_data")
    params_path = _params_file(root)
    res = _resources(params_path, root)
    selected = [a for a in ASSETS if a.key.to_user_string() in DATA_ASSETS]
    result = dg.materialize(selected, partition_key="synthtalk", resources=res)
    index = json.loads((root / "data/datasets/synthtalk/shards/index.json").read_text())
    return root, params_path, res, result, index


def test_data_assets_materialize_and_audit_checks_pass(materialized):
    _, _, _, result, index = materialized
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {GX_CHECK: True}
    assert index["content_hash"] and sum(s["n_samples"] for s in index["splits"].values()) == 6
    events = {e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()}
    assert set(DATA_ASSETS) == set(events)
    # the data version Dagster compares for staleness is the shard index's content hash
    assert events["shard"].tags["dagster/data_version"] == index["content_hash"]
    assert "dagster/code_version" in events["shard"].tags
    assert "IMAGINTALK_STORAGE_ROOT" not in os.environ  # resources were given to the stages, not exported


def test_failed_blocking_audit_stops_downstream(tmp_path):
    """A manifest audit that fails (quarantine rate forced to 0 tolerance with a corrupt clip) must
    stop the tokenizer and shard assets: the check is blocking."""
    params_path = _params_file(tmp_path)
    doc = yaml.safe_load(params_path.read_text())
    doc.setdefault("audit", {})["max_quarantine_rate"] = 0.0
    params_path.write_text(yaml.safe_dump(doc))
    res = _resources(params_path, tmp_path)
    first = [a for a in ASSETS if a.key.to_user_string() in ("raw_corpus",)]
    assert dg.materialize(first, partition_key="synthtalk", resources=res).success
    raw = Path(doc["pipeline"]["raw_dir"].format(corpus="synthtalk"))
    victim = sorted(raw.rglob("*.mp4"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated: ingest quarantines it
    rest = [a for a in ASSETS if a.key.to_user_string() in ("ingest", "audit_manifest", "fit_unit_tokenizer")]
    result = dg.materialize(rest, partition_key="synthtalk", resources=res, raise_on_error=False)
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {GX_CHECK: False}
    mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "fit_unit_tokenizer" not in mats


def test_sensor_requests_the_partition_whose_raw_clips_changed(tmp_path, monkeypatch):
    params_path = _params_file(tmp_path)
    monkeypatch.setenv("IMAGINTALK_PARAMS", str(params_path))
    raw = tmp_path / "data/datasets/synthtalk/raw/train/spk00"
    raw.mkdir(parents=True)
    (raw / "00000.mp4").write_bytes(b"x" * 10)
    instance = dg.DagsterInstance.ephemeral()
    first = new_raw_clips_sensor(dg.build_sensor_context(instance=instance))
    assert first.run_requests == []  # first sight records the state
    (raw / "00001.mp4").write_bytes(b"y" * 10)
    second = new_raw_clips_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert [r.partition_key for r in second.run_requests] == ["synthtalk"]
    third = new_raw_clips_sensor(dg.build_sensor_context(instance=instance, cursor=second.cursor))
    assert third.run_requests == []


@pytest.mark.slow
def test_full_graph_then_retraining_on_new_data_registers_a_model_of_the_new_data_version(tmp_path, monkeypatch):
    """Every asset, training included (Ray Train + MLflow), then new clips: the sensor fires, the
    retraining job's assets rematerialize, and a new composite version is registered whose lineage
    tag is the new data version."""
    from dagster_project.defs.jobs import retrain_job
    from imagintalk.config import load_params
    from imagintalk.registry import tracking
    from pipelines.synth import synth_corpus

    params_path = _params_file(tmp_path)
    doc = yaml.safe_load(params_path.read_text())
    doc["train"].update({"max_steps": 4, "checkpoint_every": 2, "warmup_steps": 1, "num_workers": 1})
    doc["eval"]["max_clips"] = 2
    params_path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("IMAGINTALK_PARAMS", str(params_path))
    res = _resources(params_path, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", res["mlflow"].tracking_uri)
    assert dg.materialize(ASSETS, partition_key="synthtalk", resources=res).success
    index = tmp_path / "data/datasets/synthtalk/shards/index.json"
    first = json.loads(index.read_text())["content_hash"]
    instance = dg.DagsterInstance.ephemeral()
    seen = new_raw_clips_sensor(dg.build_sensor_context(instance=instance))

    synth_corpus(tmp_path / "data/datasets/synthtalk/raw", clips_per_speaker=3, params=load_params(params_path))
    fired = new_raw_clips_sensor(dg.build_sensor_context(instance=instance, cursor=seen.cursor))
    assert [r.partition_key for r in fired.run_requests] == ["synthtalk"]
    affected = {k.to_user_string() for k in retrain_job.selection.resolve(ASSETS)}
    again = [a for a in ASSETS if a.key.to_user_string() in affected]
    assert dg.materialize(again, partition_key="synthtalk", resources=res).success
    second = json.loads(index.read_text())["content_hash"]
    assert second != first
    c = tracking.client(res["mlflow"].tracking_uri)
    versions = sorted(c.search_model_versions("name='imagintalk'"), key=lambda v: int(v.version))
    assert len(versions) == 2
    assert [v.tags["data.version"] for v in versions] == [first, second]


def test_new_raw_clips_trigger_the_sensor_and_change_the_data_version(materialized, monkeypatch):
    """Retraining on new data, data half: materialized (the module's fixture), add clips to the
    corpus root, the sensor requests the partition, the affected assets rematerialize and the data
    version changes."""
    from pipelines.synth import synth_corpus

    tmp_path, params_path, res, first, snapshot = materialized
    assert first.success
    monkeypatch.setenv("IMAGINTALK_PARAMS", str(params_path))
    data = [a for a in ASSETS if a.key.to_user_string() in DATA_ASSETS]
    index = tmp_path / "data/datasets/synthtalk/shards/index.json"
    before = snapshot["content_hash"]
    instance = dg.DagsterInstance.ephemeral()
    seen = new_raw_clips_sensor(dg.build_sensor_context(instance=instance))

    raw = tmp_path / "data/datasets/synthtalk/raw"
    from imagintalk.config import load_params

    synth_corpus(raw, clips_per_speaker=3, params=load_params(params_path))  # one more clip per speaker
    fired = new_raw_clips_sensor(dg.build_sensor_context(instance=instance, cursor=seen.cursor))
    assert [r.partition_key for r in fired.run_requests] == ["synthtalk"]

    from dagster_project.defs.jobs import retrain_job

    affected = {k.to_user_string() for k in retrain_job.selection.resolve(ASSETS)}
    assert "raw_corpus" not in affected and {"ingest", "shard", "train_style_dit", "promote"} <= affected
    again = [a for a in data if a.key.to_user_string() in affected]
    assert dg.materialize(again, partition_key=fired.run_requests[0].partition_key, resources=res).success
    after = json.loads(index.read_text())
    assert after["content_hash"] != before and after["n_samples"] == 9


@pytest.mark.parametrize("suffix", sorted(MEDIA_SUFFIXES))
def test_sensor_fingerprint_sees_every_media_suffix_a_corpus_reads(tmp_path, suffix):
    """The sensor and the corpus recipes share one extension list (imagintalk.conventions): a new
    .mkv or .mpeg clip changes the raw fingerprint just as an .mp4 does."""
    (tmp_path / "a.mp4").write_bytes(b"x")
    before = raw_fingerprint(tmp_path)
    (tmp_path / f"b{suffix.upper()}").write_bytes(b"y")
    assert raw_fingerprint(tmp_path) != before
