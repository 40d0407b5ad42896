"""`imagintalk evaluate` end to end on real (tiny) SynthTalk shards: every metric family of the
table, the three ablations, the MLflow run, the eval.* tags the gate reads, and the HTML report."""

from __future__ import annotations

import json
import math

import pytest
from train_support import register_untrained_stages, tiny_params, tracking_store

from imagintalk.config import SynthConfig
from imagintalk.models.config import model_config
from imagintalk.registry import tracking
from pipelines.evaluate import evaluate_model
from pipelines.ingest import ingest_corpus
from pipelines.promote import promote_model
from pipelines.register import register_composite
from pipelines.shard import shard_manifest
from pipelines.synth import synth_corpus


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    params = tiny_params().model_copy(update={"synth": SynthConfig(speakers=3, clips_per_speaker=2)})
    synth_corpus(root / "raw", params=params)
    ingest_corpus("synthtalk", root / "raw", root / "m.parquet", params=params)
    shard_manifest(root / "m.parquet", str(root / "shards"), workers=1, params=params)
    return root, str(root / "shards"), params


def test_evaluate_scores_every_family_logs_tags_and_reports(shards):
    root, shard_root, params = shards
    audit = root / "audit"
    audit.mkdir(exist_ok=True)
    (audit / "result.json").write_text(json.dumps({"passed": True}))
    with tracking_store(root) as uri:
        c = tracking.client(uri)
        data = tracking.read_data_version(shard_root)
        uris = register_untrained_stages(c, model_config("tiny", params), data)
        version = register_composite({s: uris[s] for s in ("style_dit", "vocoder")}, params, shards=shard_root,
                                     audit_report=audit, export_dir=root / "export")
        result = evaluate_model("models:/imagintalk@challenger", shard_root, params, report=root / "report")
        tags = c.get_model_version("imagintalk", version.version).tags
        run = c.get_run(result.run_id)
        decision = promote_model("imagintalk", params=params)

    assert result.n_clips == 2 and result.data_version == data.content_hash  # the unseen test speaker's clips
    assert set(result.rows) == {"full", "no_error_detector", "no_id", "no_emo"}
    full = result.rows["full"]
    for key in ("wer", "wer_ground_truth", "uer_before", "uer_after", "mcd", "stoi", "estoi", "speaker_sim",
                "f0_rmse", "sync_conf", "emotion_acc"):
        assert key in full, key
    # the judge reads ground-truth SynthTalk speech well; an untrained model's speech it cannot
    assert full["wer_ground_truth"] <= 1 / 3 and full["wer"] > full["wer_ground_truth"]
    assert 0 <= full["stoi"] <= 1 and -1 <= full["speaker_sim"] <= 1 and math.isfinite(full["mcd"])
    assert tags["eval.wer"] and tags["eval.speaker_sim"] and tags["eval.data_version"] == data.content_hash
    assert run.data.metrics["wer"] == pytest.approx(full["wer"]) and "no_id.speaker_sim" in run.data.metrics
    html = (root / "report" / "report.html").read_text()
    assert "no_error_detector" in html and "data:image/png;base64," in html
    assert json.loads((root / "report" / "metrics.json").read_text())["metrics"]["full"]["wer"] == full["wer"]
    assert decision.promoted and decision.decision == "first-champion"
    from imagintalk.models.imagintalk import ImaginTalk

    assert ImaginTalk.load(root / "export").cfg.name == "tiny"  # the weights DVC versions and pushes
