"""Corpus profiles (params.yaml ``corpora``): synthtalk_large is SynthTalk with its own settings,
and a bad profile is a one-line error naming it before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagintalk.config import load_params
from imagintalk.errors import ConfigError
from imagintalk.profiles import recipe_of

REPO = Path(__file__).resolve().parent.parent


def _params_with(tmp_path: Path, corpora: dict) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["corpora"] = corpora
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_quality_profile_is_synthtalk_with_its_own_splits_and_budget():
    params = load_params(REPO / "params.yaml")
    large = params.for_corpus("synthtalk_large")
    assert recipe_of(params, "synthtalk_large") == "synthtalk" and recipe_of(params, "grid") == "grid"
    s = large.synth
    # many faces (what carries to an unseen speaker), enough clips for a test split to measure
    assert s.speakers - s.val_speakers - s.test_speakers >= 100 and s.val_speakers >= 4 and s.test_speakers >= 4
    assert s.test_speakers * s.clips_per_speaker >= 64
    assert large.train.stage_steps["style_dit"] > params.train.max_steps
    assert large.tokenizer == params.tokenizer and large.audio == params.audio  # only what it overrides
    assert params.for_corpus("synthtalk") is params


@pytest.mark.parametrize(("corpora", "where", "why"), [
    ({"grid": {"recipe": "synthtalk"}}, "corpora.grid", "already used"),
    ({"mine": {"recipe": "nope"}}, "corpora.mine.recipe", "unknown recipe"),
    ({"mine": {"recipe": "synthtalk", "bogus": {}}}, "corpora.mine.bogus", "not a params section"),
    ({"mine": {"recipe": "synthtalk", "synth": 3}}, "corpora.mine.synth", "must be a mapping"),
])
def test_a_bad_profile_is_refused_when_params_load(tmp_path, corpora, where, why):
    with pytest.raises(ConfigError) as err:
        load_params(_params_with(tmp_path, corpora))
    assert where in str(err.value) and why in str(err.value) and "\n" not in str(err.value)


def test_too_few_speakers_for_the_splits_names_the_profile_field(tmp_path):
    params = load_params(_params_with(tmp_path, {"mine": {"recipe": "synthtalk", "synth": {
        "speakers": 8, "val_speakers": 4, "test_speakers": 4}}}))
    with pytest.raises(ConfigError, match=r"corpora\.mine\.synth.*too few speakers for the splits"):
        params.for_corpus("mine")


def test_an_ema_decay_outside_0_1_names_the_profile_field(tmp_path):
    params = load_params(_params_with(tmp_path, {"mine": {"recipe": "synthtalk", "train": {
        "stage_ema": {"expression": 1.5}}}}))
    with pytest.raises(ConfigError, match=r"corpora\.mine\.train.*EMA decay is in \[0, 1\)") as err:
        params.for_corpus("mine")
    assert "\n" not in str(err.value)
    assert load_params(REPO / "params.yaml").for_corpus("synthtalk_large").train.stage_ema["expression"] > 0.9


def test_an_unknown_quality_partition_exits_1_with_one_line(capsys):
    from dagster_project.demo import main

    assert main(["--corpus", "no_such_corpus"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no_such_corpus: unknown corpus partition") and "\n" not in err
