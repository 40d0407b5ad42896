"""The neural codec path: DAC (descript-audio-codec) re-implemented in its upstream module layout,
its weight files read in the upstream format, and ``codec.component`` carrying it through the
shard step, the model vocabulary, the training graph (no vocoder) and the composite model.

The weights are a randomly initialised DAC of a small config (upstream's kwargs; 16 kHz and the
320-sample hop kept, so 50 codes/s) saved as ``BaseModel.save(package=False)`` writes; the layout
of the published 16 kHz model is checked on the meta device (no memory) against tensor names and
shapes read off descript-audio-codec's dac/model/dac.py, dac/nn/layers.py and dac/nn/quantize.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from shards_support import make_talking_manifest
from typer.testing import CliRunner

from imagintalk.config import Params, load_params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.models.batch import random_batch
from imagintalk.models.config import model_config
from imagintalk.models.dac import DAC, WNConv1d, WNConvTranspose1d, dac_kwargs, load_dac, save_dac
from imagintalk.models.imagintalk import ImaginTalk
from imagintalk.pretrained import catalogue, publish, pull
from imagintalk.pretrained.cache import CACHE_ENV
from imagintalk.shards import decode_record, read_index
from imagintalk.tokenizers.locate import load_codec
from imagintalk.tokenizers.neural_codec import NeuralCodec, codec_choice
from imagintalk.train.graph import ORDER, active_stages
from pipelines.cli import app

# one torch thread: on a shared 2-core machine, two threads per conv only fight over the cores
pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "dac-tiny"
FILE = "dac_tiny.pth"
# descript-audio-codec's 16 kHz kwargs with narrow encoder/decoder (upstream's kwargs allow it)
SMALL = {**catalogue()["dac-16khz"].config, "encoder_dim": 4, "decoder_dim": 32}
LEVELS = 4

# name → shape, read off the upstream code for conf/final/16khz.yml (encoder_dim 64, rates 2·4·5·8,
# latent 64·2^4 = 1024, decoder_dim 1536, rates 8·5·4·2, 12 codebooks × 1024 of dim 8)
UPSTREAM_16KHZ = {
    "encoder.block.0.weight_g": (64, 1, 1), "encoder.block.0.weight_v": (64, 1, 7), "encoder.block.0.bias": (64,),
    "encoder.block.1.block.0.block.0.alpha": (1, 64, 1),              # ResidualUnit(64)'s Snake1d
    "encoder.block.1.block.0.block.1.weight_v": (64, 64, 7),
    "encoder.block.1.block.2.block.3.weight_v": (64, 64, 1),
    "encoder.block.1.block.4.weight_v": (128, 64, 4),                 # stride 2: kernel 4
    "encoder.block.3.block.4.weight_v": (512, 256, 10),               # stride 5: kernel 10
    "encoder.block.4.block.4.weight_v": (1024, 512, 16),
    "encoder.block.5.alpha": (1, 1024, 1), "encoder.block.6.weight_v": (1024, 1024, 3),
    "quantizer.quantizers.0.in_proj.weight_g": (8, 1, 1), "quantizer.quantizers.0.in_proj.weight_v": (8, 1024, 1),
    "quantizer.quantizers.0.out_proj.weight_v": (1024, 8, 1), "quantizer.quantizers.11.out_proj.bias": (1024,),
    "quantizer.quantizers.11.codebook.weight": (1024, 8),
    "decoder.model.0.weight_v": (1536, 1024, 7), "decoder.model.1.block.0.alpha": (1, 1536, 1),
    "decoder.model.1.block.1.weight_g": (1536, 1, 1),                 # ConvTranspose1d: g over dim 0 (input)
    "decoder.model.1.block.1.weight_v": (1536, 768, 16),
    "decoder.model.2.block.1.weight_v": (768, 384, 10),
    "decoder.model.4.block.4.block.3.weight_v": (96, 96, 1),
    "decoder.model.5.alpha": (1, 96, 1), "decoder.model.6.weight_v": (1, 96, 7), "decoder.model.6.bias": (1,),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("served") / FILE
    return save_dac(DAC(**dac_kwargs(SMALL)), path)


def _params(tmp_path: Path, base: Params | None = None, levels: int = LEVELS, config: dict | None = None,
            **codec) -> Params:
    """``base`` with the small DAC as a catalogue entry (``config`` overrides its kwargs) selected."""
    base = base or Params()
    return base.model_validate({
        **base.model_dump(mode="json"),
        "pretrained": {"cache_dir": str(tmp_path / "cache"), "components": {NAME: {
            "kind": "codec", "url": f"https://unreachable.invalid/{FILE}", "architecture": "imagintalk.models.dac.DAC",
            "config": {**SMALL, **(config or {})}, "licence": "MIT"}}},
        "storage": {"root": str(tmp_path / "store")},
        "codec": {**base.codec.model_dump(), "component": NAME, "levels": levels, **codec},
    })


@pytest.fixture(autouse=True)
def _no_deployment_env(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)


def test_the_16khz_configs_tensors_have_upstream_names_and_shapes():
    with torch.device("meta"):
        state = DAC(**dac_kwargs(catalogue()["dac-16khz"].config)).state_dict()
    assert {k: tuple(state[k].shape) for k in UPSTREAM_16KHZ} == UPSTREAM_16KHZ
    assert not any(k.endswith(".weight") and "codebook" not in k for k in state)  # every conv is weight-normed
    assert sum(1 for k in state if k.endswith("codebook.weight")) == 12
    assert sum(v.numel() for v in state.values()) == pytest.approx(74.2e6, rel=0.01)


def test_weight_norm_convs_are_torchs_old_weight_norm_by_name_and_value():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in torch 2.x: what upstream saved with
        ref = torch.nn.utils.weight_norm(torch.nn.Conv1d(6, 5, 3, padding=1))
        ref_t = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(6, 5, 10, stride=5, padding=3))
    ours, ours_t = WNConv1d(6, 5, 3, padding=1), WNConvTranspose1d(6, 5, 10, stride=5, padding=3)
    ours.load_state_dict(ref.state_dict())   # strict: the same names and shapes
    ours_t.load_state_dict(ref_t.state_dict())
    x = torch.randn(2, 6, 20)
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours_t(x), ref_t(x))


def test_a_small_dac_in_the_upstream_file_format_codes_at_50_hz_and_decodes(weights, tmp_path):
    doc = torch.load(weights, weights_only=True)
    assert set(doc) == {"state_dict", "metadata"} and doc["metadata"]["kwargs"]["sample_rate"] == 16000
    dac = load_dac(weights)
    audio = 0.3 * torch.sin(2 * torch.pi * 220 * torch.arange(16000) / 16000)[None, None]
    with torch.inference_mode():
        codes = dac.encode(audio)
        coarse = dac.encode(audio, n_quantizers=LEVELS)
        wave = dac.decode(codes)
    assert codes.shape == (1, 12, 50) and 0 <= codes.min() and codes.max() < 1024   # 1 s → 50 codes per level
    assert torch.equal(coarse, codes[:, :LEVELS])  # residual VQ: fewer levels are the first ones
    assert wave.shape == (1, 1, 16000 - 8) and wave.abs().max() <= 1  # rate 5 upsamples to 5n-1: 8 short
    # a file re-saved under torch's parametrised weight norm loads onto the same names
    renamed = {k.replace("weight_g", "parametrizations.weight.original0").replace(
        "weight_v", "parametrizations.weight.original1"): v for k, v in doc["state_dict"].items()}
    torch.save({**doc, "state_dict": renamed}, tmp_path / "param.pth")
    with torch.inference_mode():
        assert torch.equal(load_dac(tmp_path / "param.pth").encode(audio), codes)


def test_a_file_that_is_not_a_dac_is_refused_in_one_line_naming_it(weights, tmp_path):
    foreign = {"syncnet.pth": {"netcnnaud.0.weight": torch.zeros(64, 1, 3, 3)},
               "text.pth": None, "other_shape.pth": None}
    torch.save(foreign["syncnet.pth"], tmp_path / "syncnet.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    doc = torch.load(weights, weights_only=True)
    doc["state_dict"]["quantizer.quantizers.0.codebook.weight"] = torch.zeros(512, 8)
    torch.save(doc, tmp_path / "other_shape.pth")
    for name in foreign:
        with pytest.raises(ArtifactError) as err:
            load_dac(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "not a DAC weight file" in str(err.value)
        assert "\n" not in str(err.value)
    assert "codebook.weight has another shape" in str(err.value)


def test_codec_component_sets_the_models_vocabulary_and_bad_choices_are_config_errors(tmp_path):
    params = _params(tmp_path)
    vocab = model_config("tiny", params).vocab
    assert (vocab.codec_levels, vocab.codebook_size) == (LEVELS, 1024)   # the codec's codebooks, not codec.*
    assert model_config("tiny", Params()).vocab.codebook_size == Params().codec.codebook_size
    assert codec_choice(_params(tmp_path, levels=12)).levels == 12
    with pytest.raises(ConfigError, match="4 levels, but dac-tiny has 3 codebooks"):
        codec_choice(_params(tmp_path, config={"n_codebooks": 3}))
    with pytest.raises(ConfigError, match="no in-tree implementation"):
        codec_choice(_params(tmp_path, component="encodec-24khz"))
    with pytest.raises(ConfigError, match="a naturalness_judge, not a codec"):
        codec_choice(_params(tmp_path, component="dnsmos-p808"))
    with pytest.raises(ConfigError, match=r"86\.13\d* codes/s"):   # DAC 44.1 kHz's hop 512: not our 50 Hz
        codec_choice(_params(tmp_path, config={"sample_rate": 44100, "encoder_rates": [2, 4, 8, 8]}))


def test_the_codec_record_names_verified_weights_and_a_worker_resolves_them(weights, tmp_path):
    params = _params(tmp_path)
    pull(NAME, source=weights, params=params)
    codec = NeuralCodec.create(params)
    assert (codec.levels, codec.codebook_size, codec.meta["frame_rate_hz"]) == (LEVELS, 1024, 50)
    saved = codec.save(tmp_path / "tok" / "codec.npz")
    assert json.loads(saved.with_suffix(".json").read_text())["weights_source"]["component"] == NAME

    audio = (0.3 * np.sin(2 * np.pi * 180 * np.arange(25 * 640) / 16000)).astype(np.float32)   # 25 frames
    codes = codec.encode_clip(audio, None, 16000)
    assert codes.shape == (LEVELS, 50) and codes.dtype == np.int16
    assert codec.encode_clip(audio[:-100], None, 16000).shape == (LEVELS, 49)   # whole tokens, as the k-means codec

    # a worker: a fresh cache, the weights only in the storage root, params that do not list the component
    publish(NAME, tmp_path / "store", params=params)
    worker = Params.model_validate({"pretrained": {"cache_dir": str(tmp_path / "worker-cache")},
                                    "storage": {"root": str(tmp_path / "store")}})
    loaded = load_codec(saved, worker)
    assert isinstance(loaded, NeuralCodec) and loaded.version == codec.version
    assert np.array_equal(loaded.encode_clip(audio, None, 16000), codes)
    wave, lengths = loaded.decode_waveform(torch.from_numpy(codes[None]).long(), torch.tensor([50]), 16000)
    assert wave.shape == (1, 16000) and int(lengths[0]) == 16000

    # other weights under the same name: refused, naming the file and the command that fixes it
    torch.manual_seed(1)
    save_dac(DAC(**dac_kwargs(SMALL)), tmp_path / FILE)
    other = _params(tmp_path).model_copy(update={"pretrained": params.pretrained.model_copy(
        update={"cache_dir": str(tmp_path / "other-cache")})})
    pull(NAME, source=tmp_path / FILE, params=other)
    with pytest.raises(ArtifactError, match=f"not the file the codes were made with.*imagintalk models pull {NAME}"):
        NeuralCodec.load(saved, other)


def test_cli_pulls_the_builtin_dac_16khz_from_a_local_file(weights, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(f"pretrained:\n  cache_dir: {tmp_path / 'cache'}\n")
    result = CliRunner().invoke(app, ["models", "pull", "dac-16khz", "--from", str(weights),
                                      "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    assert "pulled dac-16khz (codec" in result.output
    assert (tmp_path / "cache" / "dac-16khz" / "weights_16khz.pth").is_file()


def test_the_composite_decodes_codec_tokens_straight_to_a_waveform_and_reloads(weights, tmp_path, monkeypatch):
    params = _params(tmp_path)
    pull(NAME, source=weights, params=params)
    cfg = model_config("tiny", params)
    torch.manual_seed(0)
    model = ImaginTalk(cfg, NeuralCodec.create(params))
    assert model.vocoder is None and "vocoder" not in model._parts()
    batch = random_batch(cfg.vocab, [10, 6], seed=0)
    out = model.generate_batch(batch, steps=2, seed=0)
    assert out.codes.shape == (2, LEVELS, 20) and out.waveforms.shape == (2, 10 * 640)
    assert out.lengths.tolist() == [6400, 3840] and not out.waveforms[1, 3840:].any()
    assert out.mel.shape == (2, cfg.vocab.n_mels, 40) and not out.mel[1, :, 24:].any()
    model.save(tmp_path / "m")
    assert not (tmp_path / "m" / "vocoder.pt").exists()
    loaded = ImaginTalk.load(tmp_path / "m", params=params)   # the composite passes its registering params
    assert isinstance(loaded.codec, NeuralCodec) and loaded.vocoder is None
    assert torch.equal(loaded.generate_batch(batch, steps=2, seed=0).waveforms, out.waveforms)
    # without params: params.yaml's, whose catalogue lacks dac-tiny (the record names it) and whose cache
    # is the deployment's ($IMAGINTALK_PRETRAINED_CACHE)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert ImaginTalk.load(tmp_path / "m").codec.version == loaded.codec.version


@pytest.fixture(scope="module")
def dac_shards(tmp_path_factory, weights):
    """A tiny talking-face corpus sharded with ``codec.component`` = the small DAC pulled into the cache."""
    from shards_support import fit_tokenizers_beside

    from pipelines.shard import shard_manifest

    root = tmp_path_factory.mktemp("dac-corpus")
    base = load_params()
    base = base.model_copy(update={"tokenizer": base.tokenizer.model_copy(update={"k": 4})})
    params = _params(root, base)
    pull(NAME, source=weights, params=params)
    spec = [("astro", "c0", "train", "astronaut", "ok"), ("hopper", "c0", "train", "grace_hopper", "ok"),
            ("astro2", "c0", "val", "astronaut", "ok")]
    manifest = make_talking_manifest(root / "talking", spec=spec)
    tok_dir = fit_tokenizers_beside(manifest, params)
    out = root / "shards"
    summary = shard_manifest(manifest, str(out), workers=1, params=params)
    return params, tok_dir, out, summary


def test_shards_carry_the_pretrained_codecs_codes_and_the_vocoder_is_skipped(dac_shards, tmp_path):
    from pipelines.register import composite_parts
    from pipelines.tokenizers import fit_codec
    from pipelines.train import train_stage

    params, tok_dir, out, summary = dac_shards
    assert summary.clips_ok == 3, summary.summary_line()
    codec = load_codec(tok_dir / "codec.npz", params)
    index = read_index(str(out))
    assert index["codec_version"] == codec.version
    urls = [str(out / p) for s in index["splits"].values() for p in s["shards"]]
    for sample in wds.WebDataset(urls, shardshuffle=False):
        rec = decode_record(sample)
        assert rec.codes.shape == (LEVELS, 2 * rec.n_frames) and rec.codes.dtype == np.int16
        assert 0 <= rec.codes.min() and rec.codes.max() < 1024
        assert np.array_equal(rec.codes, codec.encode_clip(rec.audio, None, 16000))   # the codec's own codes
        assert rec.meta["codec_version"] == codec.version
    assert "pretrained dac-tiny" in fit_codec(Path("unused"), tmp_path, params).summary_line()

    assert "vocoder" in ORDER and active_stages(params) == tuple(s for s in ORDER if s != "vocoder")
    assert active_stages(Params()) == ORDER
    done = train_stage("vocoder", str(out), params=params, out=tmp_path / "vocoder.json")
    assert done.version is None and "skipped vocoder" in done.summary_line()
    assert json.loads((tmp_path / "vocoder.json").read_text())["skipped"].startswith("codec.component dac-tiny")
    assert composite_parts(params) == ("error_detector", "style_dit")
    assert composite_parts(Params()) == ("error_detector", "style_dit", "vocoder")


def test_a_composite_registered_without_a_vocoder_speaks_a_video_through_the_dac(dac_shards, tmp_path):
    """register → pyfunc → `speak`, on the DAC shards, with stages registered untrained as the runner
    registers them (Ray training of five stages does not fit a unit test; test_train.py covers it)."""
    import soundfile as sf
    from train_support import register_untrained, tracking_store

    from imagintalk.registry import tracking
    from pipelines.register import register_composite
    from pipelines.speak import speak_video

    params, _, shards, _ = dac_shards
    cfg = model_config("tiny", params)
    with tracking_store(tmp_path) as uri:
        c = tracking.client(uri)
        data = tracking.read_data_version(str(shards))
        uris = {s: register_untrained(c, s, cfg, data, {}) for s in ("expression", "unit_bert", "lip_aligner")}
        uris["error_detector"] = register_untrained(c, "error_detector", cfg, data, {
            "lip_aligner": uris["lip_aligner"], "unit_bert": uris["unit_bert"]})
        uris["style_dit"] = register_untrained(c, "style_dit", cfg, data, {
            "error_detector": uris["error_detector"], "expression": uris["expression"]})
        version = register_composite({"style_dit": uris["style_dit"]}, params, shards=str(shards))
        assert "stage.vocoder" not in version.tags and version.tags["stage.style_dit"] == uris["style_dit"]
        video = shards.parent / "talking" / "raw" / "astro" / "c0.mp4"
        done = speak_video(video, tmp_path / "c0.wav", model="models:/imagintalk@challenger", params=params)
    wave, rate = sf.read(tmp_path / "c0.wav")
    assert rate == 16000 and wave.shape == (25 * 640,) and np.isfinite(wave).all() and np.abs(wave).max() > 0
    assert "c0.wav" in done.summary_line()
