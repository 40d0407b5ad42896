"""The paper recipe on LRS3 (params.yaml's ``lrs3_paper`` profile; README, "Reproducing the paper on
LRS3"): every component it names is in the catalogue with the kind its setting needs, the command
line and the cluster's RayJobs run under it, and an LRS3-layout corpus of real mp4s (H.264 + AAC,
``Text:`` transcripts) goes through the pipeline's own stages under the profile, then an evaluation
reports WER, CER, naturalness and lip sync with the profile's judges.

Every component is the real architecture at a tiny width (the sizes, and the zoo-file writer, of
its own test module), saved in its upstream file format with random weights and pulled into a
temporary cache under the catalogue name the profile uses: only the entry's architecture size and
hash are overridden, as a mirror would be. SyncNet keeps its real size (it has no other); the
speaker encoder and the naturalness judge are the real ones, which ship in their wheels. The fast
evaluation test registers the ``tiny`` preset untrained (as tests/test_evaluate.py does); the slow
one trains every stage the profile trains for a few steps on Ray Train, from the same shards, and
registers, speaks and evaluates that model: what a user runs, at CI size.
"""

from __future__ import annotations

import copy
import hashlib
import shlex
from pathlib import Path

import pytest
import torch
import torchaudio
import typer.main
import yaml
from pretrained_support import TINY_AUTO_AVSR, TINY_WAV2VEC2, save_auto_avsr_zoo_file
from sample_media import write_talking_clip
from test_dac_codec import SMALL as DAC_SMALL
from test_eval_asr import JUDGE_CONFIG
from typer.testing import CliRunner

from imagintalk.config import Params, load_params
from imagintalk.eval.catalog import ASR_METRICS, SYNC_METRICS
from imagintalk.eval.sync import SyncNet
from imagintalk.models.auto_avsr import AutoAVSRConfig, AutoAVSRVisualEncoder, load_auto_avsr
from imagintalk.models.config import model_config
from imagintalk.models.dac import DAC, dac_kwargs, save_dac
from imagintalk.pretrained import catalogue, pull, resolve
from imagintalk.pretrained.cache import CACHE_ENV
from imagintalk.profiles import recipe_of
from imagintalk.train.graph import ORDER
from pipelines.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parent.parent
PROFILE = "lrs3_paper"
CLI = typer.main.get_command(app)
# the HuBERT stand-in keeps the profile's layer 6 (6 blocks, 32 wide); no CTC head, as HuBERT Base
HUBERT_TINY = {**TINY_WAV2VEC2, "encoder_num_layers": 6, "aux_num_out": None}
# CI sizes swapped into the profile: K=200 needs far more frames than five short clips have; the
# evaluation judges the real audio and the full model only (the other rungs are tests/test_evaluate.py's);
# training: the tiny preset, a few steps per stage, one CPU rank (DDP is tests/test_train.py's)
TRAIN_STEPS = 2
CI_PROFILE = {"tokenizer": {"k": 8}, "ingest": {"workers": 1, "val_fraction": 0.0},
              "shards": {"workers": 1, "samples_per_shard": 4},
              "eval": {"report_clips": 1, "ladder": ["ground_truth"], "ablations": []},
              "pipeline": {"model_size": "tiny"}, "loader": {"batch_size": 2, "num_workers": 0, "shuffle_buffer": 4},
              "train": {"num_workers": 1, "cpus_per_worker": 1, "use_gpu": "false", "max_steps": TRAIN_STEPS,
                        # every stage named: the base params' own per-stage steps would apply otherwise
                        "stage_steps": dict.fromkeys(ORDER, TRAIN_STEPS), "checkpoint_every": TRAIN_STEPS,
                        "warmup_steps": 1, "log_every": 1, "val_batches": 1}}
# LRS3's layout: subset/YouTube id/clip number; the test speakers are unseen (their own folder)
CLIPS = [("trainval", "aYBJayS6mTY", "00001", "astronaut", "bin blue at f two now"),
         ("trainval", "aYBJayS6mTY", "00002", "astronaut", "lay green by d one soon"),
         ("pretrain", "gSCSsL3it9Y", "00001", "grace_hopper", "place red in a nine again"),
         ("test", "62cNtvx6P8E", "00001", "grace_hopper", "set white with z four please"),
         ("test", "UmvOgW6iV2s", "00002", "astronaut", "bin blue at f two now")]


def profile() -> Params:
    return load_params(REPO / "params.yaml").for_corpus(PROFILE)


# --------------------------------------------------------------------------- the profile itself
def test_the_profile_is_lrs3_with_the_papers_components_each_catalogued_as_its_kind():
    base = load_params(REPO / "params.yaml")
    p = base.for_corpus(PROFILE)
    known = catalogue(p)
    named = {p.tokenizer.checkpoint: "unit_extractor", p.codec.component: "codec",
             p.lip_aligner.visual_encoder: "visual_encoder", p.eval.asr: "asr_judge",
             p.eval.sync_judge: "sync_judge",
             # always on, by default the copies in the wheels: naturalness (DNSMOS) and the speaker judge
             # (GE2E), which also embeds the shards' speaker targets
             p.eval.naturalness_judge: "naturalness_judge", p.eval.speaker_judge: "speaker_encoder",
             p.shards.speaker_encoder: "speaker_encoder"}
    assert {name: known[name].kind for name in named} == named
    assert known[p.eval.naturalness_judge].bundled and known[p.shards.speaker_encoder].bundled
    assert recipe_of(base, PROFILE) == "lrs3" and p.pipeline.model_size == "paper"
    # lip2speech-unit's units; the follow-up's full 12 x 1024 codec; the encoder frozen
    assert (p.tokenizer.features, p.tokenizer.layer, p.tokenizer.k, p.tokenizer.normalize) == ("hubert", 6, 200, "none")
    assert p.codec.levels == known[p.codec.component].config["n_codebooks"] == 12
    assert p.lip_aligner.freeze_visual_encoder and p.loader.crop == 88   # the encoder's input size
    assert p.train.use_gpu == "true" and p.train.num_workers >= 2
    assert p.eval.max_clips == 0                                       # the whole test set, as the field
    floors = {f.metric: f for f in base.promote.floors[PROFILE]}
    assert floors["wer"].max == 0.30 and {"lse_c", "lse_d", "dnsmos_p808", "speaker_sim"} <= set(floors)
    # only the profile changes: the default partition keeps the embedded components
    assert (base.tokenizer.features, base.codec.component, base.lip_aligner.visual_encoder) == ("mfcc", None, None)


def test_the_paper_preset_builds_on_the_pretrained_visual_encoder():
    from imagintalk.models.imagintalk import count_parameters

    cfg = model_config("paper", profile())
    assert cfg.name == "paper" and cfg.lip_aligner.visual_encoder == "auto-avsr-vsr-lrs3-base"
    assert (cfg.vocab.codec_levels, cfg.vocab.codebook_size, cfg.vocab.num_units) == (12, 1024, 200)
    counts = count_parameters(cfg)
    assert counts["lip_aligner"] > 180e6 and "vocoder" in counts    # its 182 M encoder included


def _cli(argv: list[str]):
    """``imagintalk ...`` parsed by the real command line (an unknown option raises)."""
    assert argv[0] == "imagintalk"
    return CLI.commands[argv[1]].make_context(argv[1], argv[2:]).params


def test_the_documented_local_loop_runs_every_stage_in_the_registrys_order():
    from pipelines.registry import STAGES

    (loop,) = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("for s in ")]
    assert loop.removeprefix("for s in ").removesuffix("; do").split() == [s.name for s in STAGES]


def test_the_clusters_rayjobs_run_the_profile_with_the_documented_substitution():
    """README's KubeRay step rewrites infra/k8s/rayjob-train.yaml's entrypoints with this sed line."""
    readme = (REPO / "README.md").read_text()
    sed = "sed -e 's#--config base#--corpus lrs3_paper#' -e 's#s3://imagintalk/shards#s3://imagintalk/lrs3_paper/shards#'"
    assert sed in readme
    docs = list(yaml.safe_load_all((REPO / "infra/k8s/rayjob-train.yaml").read_text()))
    for doc in docs:
        entry = doc["spec"]["entrypoint"].replace("--config base", f"--corpus {PROFILE}") \
            .replace("s3://imagintalk/shards", f"s3://imagintalk/{PROFILE}/shards")
        params = _cli(shlex.split(entry))
        assert params["corpus"] == PROFILE and params["config"] is None and "lrs3_paper" in params["shards"]


def test_train_under_the_profile_on_the_command_line_and_a_typo_is_one_line(tmp_path):
    runner = CliRunner()
    # under the profile the codec is the DAC, so the vocoder stage is skipped before any Ray job
    res = runner.invoke(app, ["train", "vocoder", "--shards", str(tmp_path), "--corpus", PROFILE])
    assert res.exit_code == 0 and "skipped vocoder: codec.component dac-16khz" in res.stdout
    res = runner.invoke(app, ["train", "vocoder", "--shards", str(tmp_path), "--corpus", "lrs3_papr"])
    assert res.exit_code == 1 and "lrs3_papr: unknown corpus partition" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- end to end on a fixture
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_weights(root: Path) -> dict[str, tuple[Path, dict]]:
    """Each named component's file in its upstream format, and the catalogue fields that differ
    (the tiny architecture's size, the file's hash)."""
    torch.manual_seed(0)
    root.mkdir(parents=True)
    hubert = root / "hubert.pth"   # torchaudio's export: a bare state_dict of the builder's model
    torch.save(torchaudio.models.wav2vec2_model(**HUBERT_TINY).state_dict(), hubert)
    asr = root / "asr.pth"         # fairseq's 32-row CTC head, as the published file has
    torch.save(torchaudio.models.wav2vec2_model(**TINY_WAV2VEC2, aux_num_out=32).state_dict(), asr)
    sync = root / "syncnet_v2.model"
    torch.save(SyncNet().state_dict(), sync)
    avsr = save_auto_avsr_zoo_file(AutoAVSRVisualEncoder(AutoAVSRConfig(**TINY_AUTO_AVSR)).eval(), root / "vsr.pth")
    dac = save_dac(DAC(**dac_kwargs(DAC_SMALL)), root / "dac.pth")
    w2v = "torchaudio.models.wav2vec2_model"
    return {"hubert-base-ls960": (hubert, {"architecture": w2v, "config": HUBERT_TINY}),
            "wav2vec2-asr-base-960h": (asr, {"architecture": w2v, "config": JUDGE_CONFIG}),
            "syncnet-v2": (sync, {}), "auto-avsr-vsr-lrs3-base": (avsr, {"config": TINY_AUTO_AVSR}),
            "dac-16khz": (dac, {"config": DAC_SMALL})}


def _ci_params(root: Path, weights: dict[str, tuple[Path, dict]]) -> Params:
    """The repo's params with the CI sizes merged into the lrs3_paper profile, the tiny components'
    entries, and every path under ``root``: what `python -m pipelines.run STAGE --corpus lrs3_paper`
    would read."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    prof = copy.deepcopy(raw["corpora"][PROFILE])
    for section, values in CI_PROFILE.items():
        prof[section] = {**prof.get(section, {}), **values}
    raw["corpora"] = {PROFILE: prof}
    raw["pretrained"] = {"cache_dir": str(root / "cache"), "components": {
        name: {**fields, "sha256": _sha(path)} for name, (path, fields) in weights.items()}}
    raw["storage"] = {**raw["storage"], "root": str(root / "store")}
    raw["pipeline"] = {**raw["pipeline"], **{k: str(root / "{corpus}" / v) for k, v in (
        ("raw_dir", "raw"), ("manifest", "manifest.parquet"), ("shards", "shards"), ("reports", "reports"),
        ("models", "models"))}}
    return Params.model_validate(raw)


def _lrs3_tree(raw: Path) -> None:
    for i, (subset, speaker, clip, face, text) in enumerate(CLIPS):
        path = raw / subset / speaker / f"{clip}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_talking_clip(path, photo_name=face, text=text, n_frames=30, seed=i)
        path.with_suffix(".txt").write_text(f"Text:  {text.upper()}\nConf:  4\n")


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """The fixture corpus through raw_corpus → ingest → audit → tokenizers → shard → audit, each by
    ``run_stage(..., "lrs3_paper")`` (DVC's and Dagster's call), the components pulled by name.
    Then, for the module's tests, the pulled components are this machine's cache
    ($IMAGINTALK_PRETRAINED_CACHE): what builds a stage without these params (a Ray worker, the
    registry's loads) finds them there, as on a machine where they were pulled. Set before a test
    starts Ray, so that its workers inherit it."""
    from pipelines.registry import run_stage, stage_paths

    root = tmp_path_factory.mktemp("lrs3")
    weights = _tiny_weights(root / "served")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(CACHE_ENV, raising=False)
        mp.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)
        params = _ci_params(root, weights)
        for name, (path, _) in weights.items():
            pull(name, source=path, params=params)
        paths = stage_paths(params, PROFILE)
        _lrs3_tree(Path(paths["raw_dir"]))
        done = {s: run_stage(s, PROFILE, params) for s in ("raw_corpus", "ingest", "audit_manifest",
                                                            "fit_unit_tokenizer", "fit_codec", "shard", "audit_shards")}
        mp.setenv(CACHE_ENV, params.pretrained.cache_dir)
        yield params, paths, done


def test_an_lrs3_tree_is_ingested_and_sharded_under_the_profile(recipe_run):
    import json

    import webdataset as wds

    from imagintalk.shards import decode_record, read_index

    params, paths, done = recipe_run
    assert done["ingest"].splits == {"train": 3, "test": 2} and done["ingest"].n_quarantined == 0
    assert done["shard"].clips_ok == 5, done["shard"].summary_line()
    unit_meta = json.loads((Path(paths["tokenizers"]) / "unit_tokenizer.json").read_text())
    assert unit_meta["checkpoint_name"] == "hubert-base-ls960"
    index = read_index(paths["shards"])
    urls = [str(Path(paths["shards"]) / p) for s in index["splits"].values() for p in s["shards"]]
    for sample in wds.WebDataset(urls, shardshuffle=False):
        rec = decode_record(sample)
        assert rec.codes.shape == (12, 2 * rec.n_frames) and rec.codes.max() < 1024   # all 12 DAC levels
        assert rec.units.max() < 8 and rec.meta["transcript"].isupper()
        assert rec.clip_id.startswith("lrs3/")    # the recipe's records, in the profile's partition


def test_evaluation_reports_wer_cer_naturalness_and_sync_with_the_profiles_judges(recipe_run, tmp_path):
    import json

    from train_support import register_untrained_stages, tracking_store

    from imagintalk.registry import tracking
    from pipelines.evaluate import evaluate_model
    from pipelines.promote import promote_model
    from pipelines.register import register_composite

    params, paths, _ = recipe_run
    p = params.for_corpus(PROFILE)
    audit = Path(paths["reports"]) / "audit_shards"
    with tracking_store(tmp_path) as uri:
        c = tracking.client(uri)
        data = tracking.read_data_version(paths["shards"])
        uris = register_untrained_stages(c, model_config("tiny", p), data)
        register_composite({"style_dit": uris["style_dit"]}, p, shards=paths["shards"], audit_report=audit)
        result = evaluate_model("models:/imagintalk@challenger", paths["shards"], p, report=tmp_path / "report",
                                corpus=PROFILE)
        decision = promote_model("imagintalk", params=p, decision_path=tmp_path / "promotion.json")
    print(result.summary_line())
    assert result.n_clips == 2 and result.missing == {} and list(result.rows) == ["ground_truth", "full"]
    for variant in result.rows:
        row = result.rows[variant]
        for metric in (*ASR_METRICS, "dnsmos_p808", *SYNC_METRICS):
            assert metric in row, (variant, metric)
        assert 0 <= row["wer"] and 0 <= row["cer"] and 1 <= row["dnsmos_p808"] <= 5 and row["lse_d"] > 0
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["meta"]["corpus"] == PROFILE and saved["missing"] == {}
    # the gate reads the profile's floors: an untrained model does not reach the field's WER
    assert not decision.promoted and f"below the floors of {PROFILE}" in decision.reason


@pytest.mark.slow
@pytest.mark.ray
def test_every_stage_trains_on_the_lrs3_shards_and_the_model_speaks_and_is_judged_by_every_judge(
        recipe_run, ray_session, tmp_path):   # recipe_run first: Ray's workers inherit its cache
    """The rest of the recipe on the same shards, each step by ``run_stage(..., "lrs3_paper")``:
    every stage the profile trains (the vocoder is skipped under the DAC codec; the lip aligner on
    the frozen auto_avsr encoder) on Ray Train, the composite registered, one fixture video spoken,
    the evaluation reporting WER, CER, DNSMOS, LSE-C/D and speaker similarity, none missing."""
    import math

    import mlflow.pytorch
    from train_support import tracking_store

    from pipelines.registry import run_stage
    from pipelines.speak import speak_video

    params, paths, _ = recipe_run
    p = params.for_corpus(PROFILE)
    with tracking_store(tmp_path):
        trained = {s: run_stage(f"train_{s}", PROFILE, params) for s in ORDER}
        registered = run_stage("register", PROFILE, params).version
        video = Path(paths["raw_dir"]) / "test" / CLIPS[3][1] / f"{CLIPS[3][2]}.mp4"
        spoken = speak_video(video, tmp_path / "spoken.wav", model=registered.uri, params=p)
        result = run_stage("evaluate", PROFILE, params)
        aligner = mlflow.pytorch.load_model(trained["lip_aligner"].version.uri)
        served = load_auto_avsr(resolve("auto-avsr-vsr-lrs3-base", params=p), AutoAVSRConfig(**TINY_AUTO_AVSR))
    print(result.summary_line())
    assert trained["vocoder"].skipped and "dac-16khz" in trained["vocoder"].skipped
    for stage in set(ORDER) - {"vocoder"}:
        assert trained[stage].version.metrics["train_steps"] == TRAIN_STEPS, stage
        assert registered.tags[f"stage.{stage}"] == trained[stage].version.uri
    assert "stage.vocoder" not in registered.tags
    # the aligner learnt on the pulled encoder, which training left as it was (frozen)
    (encoder,) = [m for m in aligner.modules() if isinstance(m, AutoAVSRVisualEncoder)]
    assert not any(q.requires_grad for q in encoder.parameters())
    assert all(torch.equal(v, served.state_dict()[k]) for k, v in encoder.state_dict().items())
    assert spoken.outputs == [str(tmp_path / "spoken.wav")] and spoken.seconds_of_speech > 0.5
    assert result.model_uri == registered.uri and result.n_clips == 2 and result.missing == {}
    for variant in ("ground_truth", "full"):
        row = result.rows[variant]
        for metric in (*ASR_METRICS, "dnsmos_p808", *SYNC_METRICS, "speaker_sim"):
            assert math.isfinite(row.get(metric, math.nan)), (variant, metric)
