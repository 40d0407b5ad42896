"""Stage registration, dependency lookup, provenance and the composite pyfunc (no Ray here).

Stage versions are registered the way the training runner registers them, from freshly built
tiny modules (training itself is covered by test_train.py); the composite is then assembled,
loaded back by alias and asked to speak for a real talking-face video.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from train_support import register_untrained, register_untrained_stages, tiny_params, tracking_store, write_tiny_shards
from typer.testing import CliRunner

from imagintalk.errors import ConfigError, DataError
from imagintalk.models.config import model_config
from imagintalk.registry import tracking
from imagintalk.registry.stage_models import (
    find_dependency,
    model_name,
)
from imagintalk.registry.versions import RegistryError
from pipelines.promote import promote_model
from pipelines.register import register_composite
from pipelines.train import train_stage

N_FRAMES = 25


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Every stage registered once (tiny, untrained) on a tiny shard root with a fitted codec."""
    root = tmp_path_factory.mktemp("registry")
    shards = write_tiny_shards(root / "shards")
    params = tiny_params()
    cfg = model_config("tiny", params)
    with tracking_store(root) as uri:
        c = tracking.client(uri)
        data = tracking.read_data_version(shards)
        uris = register_untrained_stages(c, cfg, data)
        yield {"root": root, "shards": shards, "params": params, "uri": uri, "uris": uris, "data": data}


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory) -> Path:
    from sample_media import write_talking_clip

    return write_talking_clip(tmp_path_factory.mktemp("clip") / "astronaut.mp4", n_frames=N_FRAMES).path


def test_composite_loads_by_alias_and_speaks_from_a_video(stages, talking_clip):
    audit = stages["root"] / "audit"
    audit.mkdir(exist_ok=True)
    (audit / "result.json").write_text(json.dumps({"passed": True}))
    pins = {s: stages["uris"][s] for s in ("style_dit", "vocoder")}  # the refiner follows the DiT
    with tracking_store(stages["root"]):
        version = register_composite(pins, stages["params"], audit_report=audit)
        assert version.tags["stage.error_detector"] == stages["uris"]["error_detector"]
        assert version.tags["stage.lip_aligner"] == stages["uris"]["lip_aligner"]
        assert version.tags["stage.expression"] == stages["uris"]["expression"]  # the DiT's, pinned
        assert version.tags["data.version"] == stages["data"].content_hash
        assert version.tags["audit.passed"] == "true"
        c = tracking.client()
        assert "## Intended use" in c.get_model_version("imagintalk", version.version).description
        model = mlflow.pyfunc.load_model("models:/imagintalk@challenger")
        waves = model.predict(str(talking_clip))
        frame = pd.DataFrame({"video": [str(talking_clip)] * 2, "emotion": ["happy", None]})
        batch = model.predict(frame)
        for key, value in {"eval.wer": "0.4", "eval.speaker_sim": "0.6"}.items():
            c.set_model_version_tag("imagintalk", version.version, key, value)
        assert promote_model("imagintalk", params=stages["params"]).decision == "first-champion"
        champion = mlflow.pyfunc.load_model("models:/imagintalk@champion").unwrap_python_model()
        assert champion.model.cfg.name == "tiny" and champion.settings["steps"] == stages["params"].eval.steps
    assert len(waves) == 1 and waves[0].dtype == np.float32 and waves[0].shape == (N_FRAMES * 640,)
    assert np.isfinite(waves[0]).all() and float(np.abs(waves[0]).max()) > 0
    assert [w.shape for w in batch] == [(N_FRAMES * 640,)] * 2
    # same video, same seed, no emotion given in both: the first call is reproduced exactly
    np.testing.assert_array_equal(batch[1], waves[0])


def test_composite_refuses_a_refiner_the_dit_was_not_trained_on(stages):
    cfg = model_config("tiny", stages["params"])
    with tracking_store(stages["root"]):
        c = tracking.client()
        other = register_untrained(c, "error_detector", cfg, stages["data"], {
            "lip_aligner": stages["uris"]["lip_aligner"], "unit_bert": stages["uris"]["unit_bert"]})
        with pytest.raises(RegistryError, match="was trained on"):
            register_composite({"style_dit": stages["uris"]["style_dit"], "vocoder": stages["uris"]["vocoder"],
                                "error_detector": other}, stages["params"])


def test_composite_refuses_a_codec_of_another_version(stages, tmp_path):
    from imagintalk.config import CodecConfig
    from imagintalk.tokenizers.codec import ResidualCodec
    from imagintalk.tokenizers.locate import CodecNotFound

    rng = np.random.default_rng(5)
    wrong = ResidualCodec.fit([rng.standard_normal((80, 64)).astype(np.float16)],
                              CodecConfig(levels=2, codebook_size=16, seed=3))
    path = wrong.save(tmp_path / "codec.npz")
    with tracking_store(stages["root"]), pytest.raises(CodecNotFound, match="codec version"):
        register_composite({"style_dit": stages["uris"]["style_dit"], "vocoder": stages["uris"]["vocoder"]},
                           stages["params"], codec_path=str(path))


def test_dependency_lookup_takes_same_size_prefers_same_data_and_honours_pins(stages):
    with tracking_store(stages["root"]):
        c = tracking.client()
        mv = find_dependency(c, "lip_aligner", "tiny", stages["data"].content_hash)
        assert f"models:/{mv.name}/{mv.version}" == stages["uris"]["lip_aligner"]
        assert find_dependency(c, "lip_aligner", "tiny", "other-data").version == mv.version  # falls back
        assert str(find_dependency(c, "lip_aligner", "tiny", "x", pin="1").version) == "1"
        with pytest.raises(RegistryError, match="no registered 'base' version"):
            find_dependency(c, "lip_aligner", "base", stages["data"].content_hash)
        with pytest.raises(RegistryError, match="model size"):
            find_dependency(c, "lip_aligner", "base", "x", pin="1")


def test_stage_version_records_data_code_and_card(stages):
    with tracking_store(stages["root"]):
        c = tracking.client()
        mv = c.get_model_version(model_name("style_dit"), "1")
    tags = mv.tags
    assert tags["data.version"] == stages["data"].content_hash and tags["data.tokenizer_version"] == "units-test"
    assert tags["depends.error_detector"] == stages["uris"]["error_detector"]
    assert tags["git.commit"] not in ("", None) and tags["model.preset"] == "tiny"
    for needle in (stages["data"].content_hash, "## Limits", "## Metrics", "error_detector"):
        assert needle in mv.description


def test_provenance_helpers_tolerate_missing_git_and_name_a_missing_index(tmp_path):
    assert tracking.git_info(tmp_path) == {"git.commit": "unknown", "git.dirty": "unknown"}
    with pytest.raises(DataError, match="index.json: no dataset index"):
        tracking.read_data_version(str(tmp_path))
    (tmp_path / "index.json").write_text("{}")
    with pytest.raises(DataError, match="no content_hash"):
        tracking.read_data_version(str(tmp_path))
    info = tracking.system_info()
    assert info["sys.torch"] and info["sys.device"]


def test_unknown_stage_is_a_one_line_error_and_cli_exits_1(tmp_path):
    import yaml

    from pipelines.cli import app

    with pytest.raises(ConfigError, match="unknown training stage"):
        train_stage("decoder", str(tmp_path), params=tiny_params())
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params().model_dump(mode="json")))
    res = CliRunner().invoke(app, ["train", "decoder", "--shards", str(tmp_path), "--params", str(params_file)])
    assert res.exit_code == 1 and res.output.startswith("error: decoder: unknown training stage")
    res = CliRunner().invoke(app, ["train", "lip_aligner", "--shards", str(tmp_path / "none"),
                                   "--params", str(params_file)])
    assert res.exit_code == 1 and "no dataset index" in res.output
