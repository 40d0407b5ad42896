"""Open-vocabulary intelligibility: the CTC ASR judge named in params (weights pulled through the
pretrained catalogue from a loopback HTTP server, in the upstream format: a bare state_dict of a
tiny randomly initialised torchaudio wav2vec 2.0 with fairseq's 32-row CTC head), WER/CER with the
field's text normalisation, metrics that cannot be computed reported with the reason, and the
gate refusing a floor on such a metric with that reason. Nothing reaches outside 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from http_support import serve_folder
from pretrained_support import TINY_WAV2VEC2
from pydantic import ValidationError

from imagintalk.config import Params, PromoteConfig
from imagintalk.errors import ConfigError
from imagintalk.eval import metrics as M
from imagintalk.eval.ctc_asr import CTCJudge, ctc_greedy, length_batches
from imagintalk.eval.intelligibility import choose_asr, coverage, gaps, score
from imagintalk.eval.report import write_report
from imagintalk.pretrained import catalogue, pull
from imagintalk.pretrained.cache import CACHE_ENV
from imagintalk.pretrained.catalog import WAV2VEC2_ASR_LABELS
from imagintalk.registry.gate import compare_metrics

NAME = "wav2vec2-asr-base-960h"
FILE = "wav2vec2_fairseq_base_ls960_asr_ls960.pth"   # the upstream file name: the cache keeps it
TINY = TINY_WAV2VEC2
# the judge's config as the built-in entry has it, with the tiny architecture's builder arguments
JUDGE_CONFIG = {**TINY, "aux_num_out": 29, "labels": list(WAV2VEC2_ASR_LABELS), "remove_aux_axes": [1, 2, 3],
                "sample_rate": 16000}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The served folder: the tiny model's state_dict, 32 CTC outputs as fairseq's dictionary has."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    model = torchaudio.models.wav2vec2_model(**TINY, aux_num_out=32)
    torch.save(model.state_dict(), root / FILE)
    return root


@pytest.fixture(scope="module")
def server(weights) -> Iterator[str]:
    with serve_folder(weights) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_deployment_env(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)


def _params(tmp_path: Path, url: str, sha256: str | None = None, config: dict | None = None,
            asr: str | None = NAME) -> Params:
    """params.yaml as a user writes it: eval.asr names the judge, a mirror URL for its weights."""
    spec = {"url": url, "architecture": "torchaudio.models.wav2vec2_model", "config": config or JUDGE_CONFIG,
            **({"sha256": sha256} if sha256 else {})}
    return Params.model_validate({
        "pretrained": {"cache_dir": str(tmp_path / "cache"), "components": {NAME: spec}},
        "storage": {"root": str(tmp_path / "store")}, "eval": {"asr": asr},
    })


def _wave(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (120 + 80 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def judged(tmp_path_factory, server, weights):
    """The judge as the evaluation gets it: pulled by name over loopback HTTP, resolved, loaded."""
    tmp = tmp_path_factory.mktemp("judge")
    sha = hashlib.sha256((weights / FILE).read_bytes()).hexdigest()
    params = _params(tmp, f"{server}/{FILE}", sha)
    path = pull(NAME, params=params)
    return params, path, choose_asr(params)


def test_judge_pulled_through_the_catalogue_transcribes_deterministically(judged):
    params, path, choice = judged
    assert path.name == FILE and path.parent.name == NAME
    assert isinstance(choice.judge, CTCJudge) and choice.reason is None and NAME in choice.description
    wave = _wave(1.0, 0)
    text = choice.judge.transcribe(wave)
    assert isinstance(text, str) and text == text.strip().lower()
    assert set(text) <= {c.lower() for c in WAV2VEC2_ASR_LABELS[2:]} | {" "}
    again = choose_asr(params).judge   # a fresh load of the same file: the same words
    assert again.transcribe(wave) == text == choice.judge.transcribe(wave)


def test_batches_give_each_clip_its_own_transcript_and_other_rates_are_resampled(judged):
    judge = judged[2].judge
    waves = [_wave(1.0, 1), _wave(2.0, 2), _wave(1.0, 3), _wave(0.5, 4), _wave(0.01, 5)]
    assert judge.transcribe_batch(waves) == [judge.transcribe(w) for w in waves]
    assert list(length_batches([100, 300, 101, 50], batch_size=2)) == [[3], [0, 2], [1]]
    at_8k = _wave(1.0, 6, sr=8000)
    resampled = torchaudio.functional.resample(torch.from_numpy(at_8k), 8000, 16000).numpy()
    assert judge.transcribe(at_8k, sample_rate=8000) == judge.transcribe(resampled)


def test_greedy_ctc_collapses_repeats_drops_blanks_and_reads_word_separators():
    idx = {c: i for i, c in enumerate(WAV2VEC2_ASR_LABELS)}
    frames = "-HHEL-LOO||-WORLD-|"   # "-" blank: it also keeps the two L apart
    assert ctc_greedy([idx[c] for c in frames], WAV2VEC2_ASR_LABELS) == "hello world"
    assert ctc_greedy([0, 0, 1, 0], WAV2VEC2_ASR_LABELS) == ""


def test_wer_and_cer_normalise_case_punctuation_and_spacing():
    assert M.normalise_text("  It's   a TEST,  isn't it? ") == "its a test isnt it"
    refs = ["Hello, World!", "IT'S   a TEST."]
    assert M.word_error_rate(refs, ["hello world", "its a test"]) == 0.0
    assert M.char_error_rate(refs, ["hello world", "its a test"]) == 0.0
    assert M.word_error_rate(["The cat sat."], ["the CAT, sad"]) == pytest.approx(1 / 3)
    assert M.char_error_rate(["The cat sat."], ["the CAT, sad"]) == pytest.approx(1 / 11)   # spaces count
    # corpus-level: all edits over all reference words; a reference with no words is left out
    assert M.word_error_rate(["a b c", "d", "?!"], ["a b c", "e", "x"]) == pytest.approx(1 / 4)
    assert math.isnan(M.word_error_rate(["..."], ["x"]))


def test_scores_only_clips_with_a_transcript_for_every_rung_the_same_way(judged):
    judge = judged[2].judge
    audios = [_wave(1.0, 7), _wave(1.0, 8), _wave(1.0, 9)]
    row = score(["Hello there.", None, "GOOD MORNING"], audios, judge)
    assert set(row) == {"wer", "cer"} and all(math.isfinite(v) and v >= 0 for v in row.values())
    hyps = judge.transcribe_batch([audios[0], audios[2]])
    assert row["wer"] == M.word_error_rate(["Hello there.", "GOOD MORNING"], hyps)
    assert score([None, "", "..."], audios, judge) == {}
    assert coverage(judged[2], ["a", None, "b"]) == {
        "setting": NAME, "judge": judged[2].description, "graded_clips": 2, "clips_with_transcript": 2, "clips": 3}


def test_missing_weights_are_reported_as_not_computed_with_the_pull_command(tmp_path):
    choice = choose_asr(_params(tmp_path, "https://unreachable.invalid/x.pth"))   # nothing pulled
    assert choice.judge is None and choice.reason.startswith(f"eval.asr names {NAME} but its weights are not")
    missing = gaps(choice, ["Where is the station?", None])
    assert set(missing) == {"wer", "cer"} and f"imagintalk models pull {NAME}" in missing["wer"]
    rows = {"ground_truth": {"mcd": 0.0}, "full": {"mcd": 4.2}}
    html = write_report(tmp_path / "report", rows, {"corpus": "lrs3"}, missing=missing,
                        asr=coverage(choice, ["Where is the station?", None])).read_text()
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["missing"] == missing and saved["asr"]["setting"] == NAME and saved["asr"]["graded_clips"] == 0
    md = (tmp_path / "report" / "metrics.md").read_text()
    assert f"- wer: not computed — eval.asr names {NAME} but its weights" in md
    assert "- cer: not computed — " in md
    assert "**cer**: character error rate" in md and "lower is better" in md.split("**cer**")[1].splitlines()[0]
    assert "<b>wer</b>: not computed — eval.asr names" in html and "<dt>cer</dt>" in html


def test_weights_that_do_not_fit_the_configured_head_are_reported_not_raised(tmp_path, weights):
    sha = hashlib.sha256((weights / FILE).read_bytes()).hexdigest()   # the real file's hash would refuse it
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", sha,
                     config={**JUDGE_CONFIG, "remove_aux_axes": []})
    pull(NAME, source=weights / FILE, params=params)
    choice = choose_asr(params)
    assert choice.judge is None and "does not load" in choice.reason
    assert "CTC head has 32 outputs" in choice.reason and "29 labels" in choice.reason


def test_grid_judge_says_why_it_cannot_grade_open_vocabulary_and_null_means_no_judge(tmp_path):
    grid = choose_asr(Params())
    assert grid.setting == "grid" and "GRID grammar" in grid.description
    assert gaps(grid, ["Set BLUE at A one, now."]) == {}   # normalised, it fits the grammar
    why = gaps(grid, ["The quick brown fox.", "Set blue at a one now"])
    assert why == {}   # one clip fits: WER over that one (coverage says how many)
    assert coverage(grid, ["The quick brown fox.", "Set blue at a one now"])["graded_clips"] == 1
    why = gaps(grid, ["The quick brown fox.", "Jumps over."])["wer"]
    assert "grades none of the 2 transcripts (they do not fit the GRID grammar)" in why
    assert f"set eval.asr to an asr_judge component, e.g. {NAME}" in why
    assert gaps(grid, [None, ""]) == {"wer": "none of the 2 test clips has a transcript",
                                      "cer": "none of the 2 test clips has a transcript"}
    none = choose_asr(Params.model_validate({"eval": {"asr": None}}))
    assert gaps(none, ["Hello."])["cer"] == "no ASR judge configured (eval.asr is null)"


@pytest.mark.parametrize(("asr", "message"), [
    ("whisper-tiny", "architecture 'whisper.load_model (openai-whisper)' has no judge here"),
    ("dnsmos-p808", "dnsmos-p808 is a naturalness_judge, not an asr_judge (judges: grid, wav2vec2-asr-base-960h"),
    ("wav2vec-asr", "'wav2vec-asr' is neither grid nor a pretrained component"),
])
def test_eval_asr_naming_no_usable_judge_is_a_config_error(asr, message):
    with pytest.raises(ConfigError, match="^eval.asr: ") as err:
        choose_asr(Params.model_validate({"eval": {"asr": asr}}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_eval_asr_must_be_a_component_name():
    with pytest.raises(ValidationError, match="eval.asr"):
        Params.model_validate({"eval": {"asr": "Wav2Vec2 ASR"}})


def test_catalogue_entry_is_torchaudios_asr_bundle():
    bundle = torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H   # its metadata only: nothing is downloaded
    entry = catalogue()[NAME]
    assert entry.kind == "asr_judge" and entry.architecture == "torchaudio.models.wav2vec2_base"
    assert entry.url == f"https://download.pytorch.org/torchaudio/models/{FILE}" and entry.filename == FILE
    assert tuple(entry.config["labels"]) == bundle.get_labels() and entry.config["aux_num_out"] == 29
    assert entry.config["sample_rate"] == bundle.sample_rate
    assert tuple(entry.config["remove_aux_axes"]) == bundle._remove_aux_axis
    assert entry.sha256 and entry.size == 377_664_473


def test_gate_refuses_a_floor_on_a_metric_that_was_not_computed_and_says_why():
    why = f"eval.asr names {NAME} but its weights are not available: get it with: imagintalk models pull {NAME}"
    tags = {"eval.speaker_sim": "0.71", "eval.ground_truth.speaker_sim": "0.9", "eval.corpus": "lrs3",
            "eval.missing.wer": why, "eval.missing.cer": why}
    cfg = PromoteConfig.model_validate({
        "metrics": [{"name": "speaker_sim", "higher_is_better": True}],
        "floors": {"lrs3": [{"metric": "wer", "max": 0.4}, {"metric": "ground_truth.cer", "max": 0.2},
                            {"metric": "speaker_sim", "min": 0.5}]}})
    decision = compare_metrics(tags, None, cfg)
    assert not decision.passed
    assert decision.reason.startswith("below the floors of lrs3: ")
    assert f"wer not computed ({why}), needs <= 0.4" in decision.reason
    assert f"ground_truth.cer not computed ({why}), needs <= 0.2" in decision.reason
    assert "speaker_sim" not in decision.reason   # met: only the failures are listed
    assert json.loads(decision.floors_json())[0]["missing"] == why
    # a gate metric not computed: refused, with the reason, and no floors needed to see it
    default = compare_metrics(tags, None, PromoteConfig())
    assert not default.passed and default.reason.startswith("challenger not evaluated: no eval.wer")
    assert f"wer not computed: {why}" in default.reason
