"""`imagintalk evaluate` end to end on real (tiny) SynthTalk shards: every rung of the oracle ladder
and every ablation made by the composite's own code paths and judged by every metric family, the
speaker judge's floor and ceiling, the MLflow run, the eval.* tags the gate (and its floors) read,
the report to listen to, and one-line errors on bad input."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import yaml
from train_support import register_untrained_stages, tiny_params, tracking_store
from typer.testing import CliRunner

from imagintalk.config import PromoteConfig
from imagintalk.errors import ConfigError
from imagintalk.models.config import model_config
from imagintalk.registry import tracking
from pipelines.evaluate import evaluate_model
from pipelines.promote import promote_model
from pipelines.register import register_composite

RUNGS = ["ground_truth", "resynthesis", "oracle_units", "no_refinement", "full"]
JUDGED = ("wer", "mcd", "stoi", "estoi", "speaker_sim", "dnsmos_p808", "dnsmos_ovrl", "f0_rmse", "sync_conf",
          "emotion_acc")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, synthtalk_shards, synthtalk_params):
    """The session's SynthTalk shards (conftest): two unseen test speakers (the judge's floor needs a
    different speaker) with two clips each; a module root for MLflow, reports and the export."""
    return tmp_path_factory.mktemp("eval"), synthtalk_shards, synthtalk_params


def test_evaluate_runs_the_oracle_ladder_and_ablations_logs_tags_and_reports(shards, monkeypatch):
    from imagintalk.models.imagintalk import ImaginTalk

    root, shard_root, params = shards
    given, generate = [], ImaginTalk.generate

    def spy(self, *args, **kwargs):  # what emotion the generator is handed: a label only in the oracle
        given.append(kwargs.get("emotion", args[4] if len(args) > 4 else None))
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(ImaginTalk, "generate", spy)
    audit = root / "audit"
    audit.mkdir(exist_ok=True)
    (audit / "result.json").write_text(json.dumps({"passed": True}))
    floors = PromoteConfig.model_validate({"floors": {"synthtalk": [{"metric": "wer", "max": 0.5}]}})
    with tracking_store(root) as uri:
        c = tracking.client(uri)
        data = tracking.read_data_version(shard_root)
        uris = register_untrained_stages(c, model_config("tiny", params), data)
        version = register_composite({s: uris[s] for s in ("style_dit", "vocoder")}, params, shards=shard_root,
                                     audit_report=audit, export_dir=root / "export")
        result = evaluate_model("models:/imagintalk@challenger", shard_root, params, report=root / "report")
        on_test = list(given)  # the test split's calls (the val run below adds its own)
        tags = c.get_model_version("imagintalk", version.version).tags
        run = c.get_run(result.run_id)
        # settings are chosen on the validation speakers: a run and a report, never the gate's tags
        val_params = params.model_copy(update={"eval": params.eval.model_copy(update={"ladder": [], "ablations": []})})
        on_val = evaluate_model("models:/imagintalk@challenger", shard_root, val_params, split="val")
        assert c.get_model_version("imagintalk", version.version).tags == tags
        assert on_val.n_clips == 2 and list(on_val.rows) == ["full"]
        assert c.get_run(on_val.run_id).data.tags["split"] == "val"
        with pytest.raises(ConfigError, match="test split .unseen speakers. or val"):
            evaluate_model("models:/imagintalk@challenger", shard_root, val_params, split="train")
        refused = promote_model("imagintalk", params=params.model_copy(update={"promote": floors}),
                                decision_path=root / "promotion.json")
        decision = promote_model("imagintalk", params=params)
    print(result.summary_line())

    assert result.n_clips == 4 and result.data_version == data.content_hash  # the unseen test speakers' clips
    rows = result.rows
    assert list(rows) == [*RUNGS, "no_id", "no_emo", "label_emotion"]  # ladder order, then the ablations
    assert result.aliases == {"no_error_detector": "no_refinement"}
    assert result.row("no_error_detector") is rows["no_refinement"]  # one computation, two names
    for variant, row in rows.items():
        for key in JUDGED:
            assert key in row, (variant, key)
        assert ("uer" in row) == (variant not in ("ground_truth", "resynthesis")), variant
    gt, full = rows["ground_truth"], rows["full"]
    # the ground truth is the ladder's top: the judges read it well, an untrained model they cannot
    assert gt["wer"] <= 1 / 3 and full["wer"] > 0.5 and gt["stoi"] > 0.99 and gt["mcd"] < 1e-6
    assert 1 <= full["dnsmos_p808"] <= 5 and gt["dnsmos_p808"] > full["dnsmos_p808"]
    assert rows["oracle_units"]["uer"] == 0.0 and 0 < full["uer"] <= 1.5
    assert all(0 <= r["stoi"] <= 1 and math.isfinite(r["mcd"]) for r in rows.values())
    judge = result.judge
    assert -1 < judge["speaker_sim_floor"] < judge["speaker_sim_ceiling"] <= 1  # the judge tells voices apart
    # what the gate reads: every row as eval.<variant>.<metric>, full bare, the corpus for the floors
    assert tags["eval.wer"] and tags["eval.resynthesis.wer"] and tags["eval.no_refinement.uer"]
    assert tags["eval.corpus"] == "synthtalk" and tags["eval.data_version"] == data.content_hash
    assert float(tags["eval.speaker_sim_ceiling"]) == pytest.approx(judge["speaker_sim_ceiling"], rel=1e-4)
    assert run.data.metrics["wer"] == pytest.approx(full["wer"]) and "oracle_units.dnsmos_ovrl" in run.data.metrics
    assert run.data.tags["alias.no_error_detector"] == "no_refinement"

    report = root / "report"
    saved = json.loads((report / "metrics.json").read_text())
    assert saved["metrics"]["full"]["wer"] == full["wer"] and saved["aliases"] == result.aliases
    assert saved["judge"] == pytest.approx(judge) and saved["meta"]["data_version"] == data.content_hash
    # no lip-sync judge configured: LSE is listed as not computed, with how to get one
    assert set(result.missing) == {"lse_c", "lse_d"} and "eval.sync_judge" in saved["missing"]["lse_c"]
    # the face's emotion is judged against the labels (expression model), never fed from them but
    # in the label_emotion oracle (one call per batch among full, no_refinement, no_id, no_emo and it)
    labelled = [e for e in on_test if e is not None]
    assert labelled and all(e.dim() == 1 and e.dtype == torch.long for e in labelled)
    assert len(on_test) == 5 * len(labelled)
    assert 0 <= saved["expression_acc"] <= 1
    assert run.data.metrics["expression_acc"] == pytest.approx(saved["expression_acc"])
    html = (report / "report.html").read_text()
    srcs = re.findall(r"<audio [^>]*src='([^']+)'", html)
    assert len(srcs) == 4 * len(rows)  # every test clip (report_clips 4): ground truth + every variant
    assert all(not s.startswith(("/", "http")) and (report / s).stat().st_size > 1000 for s in srcs)
    for v in rows:
        assert f"/{v}.wav'" in html and f"/{v}.png'" in html
    for m in JUDGED:
        assert (report / "charts" / f"{m}.png").is_file() and f"<dt>{m}</dt>" in html
    assert "no_refinement (= no_error_detector)" in html and "lower is better" in html
    for k in ("data_version", "git.commit", "stage.style_dit", "mlflow.run_url"):
        assert f"<b>{k}</b>" in html, k
    assert "data:image" not in html  # figures are files next to the page, like the audio

    assert not refused.promoted and "below the floors of synthtalk: wer" in refused.reason
    assert "below the floors" in json.loads((root / "promotion.json").read_text())["summary"]
    assert decision.promoted and decision.decision == "first-champion"  # no floors in the test's params
    from imagintalk.models.imagintalk import ImaginTalk

    assert ImaginTalk.load(root / "export").cfg.name == "tiny"  # the weights DVC versions and pushes


@pytest.mark.parametrize(("section", "value", "message"), [
    ("ladder", ["ground_truth", "oracle"], "eval.ladder: Value error, unknown ladder entry 'oracle'"),
    ("ablations", ["no_lips"], "eval.ablations: Value error, unknown ablations entry 'no_lips'"),
])
def test_unknown_variant_is_a_one_line_error_naming_the_input(tmp_path, section, value, message):
    from pipelines.cli import app

    doc = tiny_params().model_dump(mode="json")
    doc["eval"][section] = value
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(app, ["evaluate", "--shards", str(tmp_path), "--params", str(params_file)])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert str(params_file) in lines[0] and message in lines[0]


def test_emotion_judge_is_fitted_on_every_labelled_train_clip_unless_capped(shards):
    """With few voices the judge learns the speakers, not the emotion, so by default it sees them all."""
    from pipelines.evaluate import _clips, _train_emotion_judge

    _, root, params = shards
    labelled = sum(int((b["emotion"] >= 0).sum()) for b in _clips(root, "train", params, limit=0))
    assert labelled >= 2
    judge = _train_emotion_judge(root, params.model_copy(update={"eval": params.eval.model_copy(
        update={"emotion_judge_clips": 0})}))
    assert judge.n_fit == labelled
    capped = _train_emotion_judge(root, params.model_copy(update={
        "eval": params.eval.model_copy(update={"emotion_judge_clips": 1}),
        "loader": params.loader.model_copy(update={"batch_size": 1})}))
    assert capped is None  # one clip holds one emotion: nothing to judge with
