"""Ray Train jobs for real: DDP over 2 CPU workers, checkpoints, a crash and its resume.

Three small Ray jobs of the lip aligner stage share one Ray session: an uninterrupted run (A),
and a run with a crash injected after its first checkpoint (B) that is then simply rerun. The
resumed run must continue from the checkpoint's step on exactly the trajectory of A; since B was
trained from scratch with the same shards and seed, its metrics must also equal A's
(reproducibility). A bigger all-stages run is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_support import tiny_params, tracking_store, write_tiny_shards

from imagintalk.registry import tracking
from imagintalk.registry.stage_models import model_name
from imagintalk.registry.versions import all_versions
from imagintalk.train.graph import ORDER
from imagintalk.train.placement import storage_target, worker_layout
from imagintalk.train.run_record import HASH_TAG, RUN_TAG
from imagintalk.train.runner import TrainingError
from pipelines.train import train_lip_aligner

STEPS, CKPT, FAIL_AT = 6, 3, 5
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, ray_session):
    """Run A (uninterrupted), B (crash before step FAIL_AT), B again (resume); collect results."""
    root = tmp_path_factory.mktemp("train")
    shards = write_tiny_shards(root / "shards")
    with tracking_store(root) as uri:
        c = tracking.client(uri)
        ema = {"stage_ema": {"lip_aligner": 0.5}}  # resumed with its moving average, and registered as it
        params = tiny_params(max_steps=STEPS, checkpoint_every=CKPT, **ema)
        a = train_lip_aligner(shards, "tiny", str(root / "store_a"), params)
        crash = tiny_params(max_steps=STEPS, checkpoint_every=CKPT, fail_at_step=FAIL_AT, **ema)
        with pytest.raises(TrainingError) as failed:
            train_lip_aligner(shards, "tiny", str(root / "store_b"), crash)
        exp = c.get_experiment_by_name(tracking.experiment_name("lip_aligner"))
        run_b = next(r for r in c.search_runs([exp.experiment_id]) if r.info.status == "FAILED")
        before_resume = {"status": run_b.info.status, "run_id": run_b.info.run_id,
                         "curve": tracking.metric_curve(c, run_b.info.run_id, "loss"),
                         "checkpoints": sorted((root / "store_b" / "train").glob("*/checkpoint_*/state.json"))}
        before_resume["ckpt_steps"] = [json.loads(p.read_text())["step"] for p in before_resume["checkpoints"]]
        b = train_lip_aligner(shards, "tiny", str(root / "store_b"), crash)  # the same command, rerun
        yield {"root": root, "shards": shards, "uri": uri, "a": a, "b": b, "error": failed.value,
               "before": before_resume, "params": params}


def test_killed_job_resumes_from_its_last_checkpoint_on_the_same_loss_curve(jobs):
    c = tracking.client(jobs["uri"])
    before, a, b = jobs["before"], jobs["a"], jobs["b"]
    assert "fail_at_step=5" in str(jobs["error"]) and "resume" in str(jobs["error"])
    assert before["ckpt_steps"] == [CKPT]                 # crashed after the first checkpoint
    assert sorted(before["curve"]) == list(range(1, FAIL_AT))
    assert b.run_id == before["run_id"]                   # the MLflow run is continued, not forked
    run = c.get_run(b.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["train.resumed"] == "true"
    assert run.data.tags["train.resumed_from_step"] == str(CKPT)   # the step counter continues there
    curve_a = tracking.metric_curve(c, a.run_id, "loss")
    curve_b = tracking.metric_curve(c, b.run_id, "loss")
    assert sorted(curve_a) == sorted(curve_b) == list(range(1, STEPS + 1))
    for step in curve_a:
        assert curve_b[step] == pytest.approx(curve_a[step], rel=1e-5, abs=1e-6), step
    assert curve_a[STEPS] < curve_a[1]                    # it trains
    assert b.metrics["train_steps"] == STEPS


def test_same_shards_and_seed_reproduce_the_metrics(jobs):
    a, b = jobs["a"], jobs["b"]
    assert a.data_version == b.data_version
    for key in ("loss", "unit_acc", "val_loss", "val_unit_acc"):
        assert b.metrics[key] == pytest.approx(a.metrics[key], rel=1e-5, abs=1e-6), key


def test_a_stage_with_a_moving_average_registers_the_average(jobs):
    import torch

    from imagintalk.registry.stage_models import load_stage_model

    states = (jobs["root"] / "store_a" / "train").glob("*/checkpoint_*/state.json")
    last = max(states, key=lambda p: json.loads(p.read_text())["step"]).parent
    ema = torch.load(last / "ema.pt", weights_only=True)
    final = torch.load(last / "model.pt", weights_only=True)
    registered = load_stage_model(jobs["a"].uri).state_dict()
    assert ema["n_averaged"] == STEPS
    key = next(k for k, v in final.items() if v.is_floating_point() and not torch.equal(v, ema["model"][k]))
    torch.testing.assert_close(registered[key], ema["model"][key])


def test_registered_stage_carries_provenance_and_model_card(jobs):
    c = tracking.client(jobs["uri"])
    index = json.loads((Path(jobs["shards"]) / "index.json").read_text())
    versions = all_versions(c, model_name("lip_aligner"))
    assert [str(v.version) for v in versions] == ["1", "2"]
    mv = versions[-1]
    tags = mv.tags
    assert tags["data.version"] == index["content_hash"]
    assert tags["data.codec_version"] == index["codec_version"]
    assert tags["model.preset"] == "tiny" and tags["git.commit"] and tags["git.dirty"] in ("true", "false")
    assert index["content_hash"] in mv.description and "## Intended use" in mv.description
    run = c.get_run(mv.run_id)
    assert run.data.tags[RUN_TAG] == f"lip_aligner-{index['content_hash'][:12]}-tiny"
    assert run.data.tags["sys.torch"] and run.data.tags["sys.ray"] and run.data.tags[HASH_TAG]
    assert run.data.params["train.seed"] == "0" and run.data.params["model.name"] == "tiny"
    arts = {f.path for f in c.list_artifacts(mv.run_id)}
    assert {"model_card", "model_config.json"} <= arts
    module = tracking_load(mv)
    assert sum(p.numel() for p in module.parameters()) > 0


def tracking_load(mv):
    from imagintalk.registry.stage_models import load_stage_model

    return load_stage_model(f"models:/{mv.name}/{mv.version}")


def test_a_stage_in_bfloat16_autocast_is_its_own_run_and_computes_in_bfloat16(jobs):
    params = tiny_params(max_steps=2, checkpoint_every=CKPT, stage_autocast={"lip_aligner": "bfloat16"},
                         stage_ema={"lip_aligner": 0.5})
    (jobs["root"] / "bf16").mkdir()
    with tracking_store(jobs["root"] / "bf16") as uri:  # its own store: the other tests count versions
        bf16 = train_lip_aligner(jobs["shards"], "tiny", str(jobs["root"] / "store_c"), params)
    c, c_fp32 = tracking.client(uri), tracking.client(jobs["uri"])
    run, fp32 = c.get_run(bf16.run_id), c_fp32.get_run(jobs["a"].run_id)
    assert run.data.tags[HASH_TAG] != fp32.data.tags[HASH_TAG]  # never resumed from a float32 checkpoint
    assert run.data.params["train.stage_autocast.lip_aligner"] == "bfloat16"
    first = tracking.metric_curve(c, bf16.run_id, "loss")[1]
    first_fp32 = tracking.metric_curve(c_fp32, jobs["a"].run_id, "loss")[1]
    # the same weights and batch at step 1: only the precision of the forward pass differs
    assert first != first_fp32 and first == pytest.approx(first_fp32, rel=0.02)


def test_rerun_of_a_finished_job_returns_its_version_without_training(jobs):
    with tracking_store(jobs["root"]):
        again = train_lip_aligner(jobs["shards"], "tiny", str(jobs["root"] / "store_a"), jobs["params"])
    assert again.version == jobs["a"].version and again.run_id == jobs["a"].run_id
    c = tracking.client(jobs["uri"])
    assert len(all_versions(c, model_name("lip_aligner"))) == 2


@pytest.mark.slow
def test_every_stage_trains_registers_and_composes_into_a_speaking_model(tmp_path, ray_session):
    """expression, vocoder, unit_bert, lip_aligner → error_detector → style_dit (on the refiner and
    the expression model) on Ray, then the composite, which carries the expression model."""
    import mlflow.pyfunc
    from sample_media import write_talking_clip

    from pipelines.promote import promote_model
    from pipelines.register import register_from_stage_files
    from pipelines.train import train_stage

    shards = write_tiny_shards(tmp_path / "shards")
    params = tiny_params(max_steps=4, checkpoint_every=2)
    models = tmp_path / "models"
    with tracking_store(tmp_path):
        for stage in ORDER:
            summary = train_stage(stage, shards, "tiny", params, storage=str(tmp_path / "store"),
                                  out=models / f"{stage}.json")
            assert summary.version.metrics["train_steps"] == 4
        c = tracking.client()
        ed = c.get_model_version(model_name("error_detector"), "1")
        assert ed.tags["depends.lip_aligner"] == f"models:/{model_name('lip_aligner')}/1"
        dit = c.get_model_version(model_name("style_dit"), "1")
        assert dit.tags["depends.expression"] == f"models:/{model_name('expression')}/1"
        (tmp_path / "audit").mkdir()
        (tmp_path / "audit" / "result.json").write_text(json.dumps({"passed": True}))
        reg = register_from_stage_files(models, shards, tmp_path / "audit", params)
        assert json.loads((models / "imagintalk.json").read_text())["uri"] == reg.version.uri
        assert reg.version.tags["stage.expression"] == f"models:/{model_name('expression')}/1"
        clip = write_talking_clip(tmp_path / "clip.mp4", n_frames=25)
        waves = mlflow.pyfunc.load_model("models:/imagintalk@challenger").predict(str(clip.path))
        assert waves[0].shape == (25 * 640,)
        for k, v in {"eval.wer": "0.5", "eval.speaker_sim": "0.5"}.items():
            c.set_model_version_tag("imagintalk", reg.version.version, k, v)
        assert promote_model("imagintalk", params=params).promoted


def test_worker_group_fits_the_local_machine_or_is_left_to_the_cluster():
    t = tiny_params(num_workers=4, cpus_per_worker=2).train
    gpu_box = worker_layout(t, {"CPU": 16.0, "GPU": 1.0}, cuda=True, remote=False)
    assert (gpu_box.num_workers, gpu_box.use_gpu) == (1, True)          # one NCCL rank per GPU
    small = worker_layout(t, {"CPU": 2.0}, cuda=False, remote=False)
    assert (small.num_workers, small.use_gpu, small.cpus_per_worker) == (4, False, 0.5)
    cluster = worker_layout(t, {"CPU": 8.0, "GPU": 8.0}, cuda=False, remote=True)
    assert (cluster.num_workers, cluster.use_gpu, cluster.cpus_per_worker) == (4, True, 2.0)


def test_workers_get_the_drivers_weight_caches_and_the_runs_tracking_uri(monkeypatch, tmp_path):
    from imagintalk.train.placement import worker_env

    monkeypatch.setenv("IMAGINTALK_PRETRAINED_CACHE", str(tmp_path / "pretrained"))
    monkeypatch.setenv("IMAGINTALK_DERIVED_CACHE", str(tmp_path / "derived"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    env = worker_env("sqlite:///run.db")
    assert env["IMAGINTALK_PRETRAINED_CACHE"] == str(tmp_path / "pretrained")
    assert env["IMAGINTALK_DERIVED_CACHE"] == str(tmp_path / "derived")
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///run.db"


def test_s3_storage_with_a_custom_endpoint_gets_an_explicit_filesystem(monkeypatch):
    params = tiny_params()
    assert storage_target("/data/store/train", params) == ("/data/store/train", None)
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    path, fs = storage_target("s3://bucket/store/train", params)
    assert path == "bucket/store/train" and type(fs).__name__ == "S3FileSystem"


def test_resuming_a_checkpoint_written_under_other_params_is_refused(tmp_path):
    from imagintalk.errors import ConfigError

    shards = write_tiny_shards(tmp_path / "shards")
    content = json.loads((tmp_path / "shards" / "index.json").read_text())["content_hash"]
    stale = tmp_path / "store" / "train" / f"lip_aligner-{content[:12]}-tiny" / "checkpoint_0"
    stale.mkdir(parents=True)
    (stale / "state.json").write_text(json.dumps({"step": 3, "params_hash": "another-run", "stage": "lip_aligner"}))
    with tracking_store(tmp_path), pytest.raises(ConfigError, match="different training params"):
        train_lip_aligner(shards, "tiny", str(tmp_path / "store"), tiny_params())


@pytest.mark.slow
def test_training_reads_shards_from_and_checkpoints_to_s3(tmp_path, ray_session):
    """Shards and the Ray Train storage root on S3 (moto on loopback, real HTTP)."""
    from shards_support import moto_s3

    from imagintalk import storage

    local = write_tiny_shards(tmp_path / "shards")
    with moto_s3() as bucket, tracking_store(tmp_path):
        fs, _ = storage.get_fs(bucket)
        fs.put(local, f"{bucket.removeprefix('s3://')}/shards", recursive=True)
        version = train_lip_aligner(f"{bucket}/shards", "tiny", f"{bucket}/store", tiny_params(max_steps=4,
                                                                                              checkpoint_every=2))
        states = fs.glob(f"{bucket.removeprefix('s3://')}/store/train/*/checkpoint_*/state.json")
        assert version.metrics["train_steps"] == 4 and version.tags["data.shards"] == f"{bucket}/shards"
        assert max(json.loads(fs.cat_file(p))["step"] for p in states) == 4


def test_cluster_gpu_workers_can_be_requested_before_the_autoscaler_shows_gpus():
    """The driver runs on a CPU head: with an autoscaled GPU group at zero nodes it sees no GPU,
    so `train.use_gpu: true` must still request GPU workers; `false` keeps them off GPUs."""
    from imagintalk.config import TrainConfig

    assert not worker_layout(TrainConfig(), {"CPU": 8.0}, cuda=False, remote=True).use_gpu
    assert worker_layout(TrainConfig(use_gpu="true"), {"CPU": 8.0}, cuda=False, remote=True).use_gpu
    assert not worker_layout(TrainConfig(use_gpu="false"), {"CPU": 8.0, "GPU": 4.0}, cuda=True, remote=True).use_gpu
    assert not worker_layout(TrainConfig(use_gpu="false"), {"CPU": 8.0, "GPU": 1.0}, cuda=True, remote=False).use_gpu
