"""The pretrained visual encoder path: auto_avsr's VSR front-end + Conformer re-implemented in its
upstream module layout, its model-zoo checkpoints read as they are, and the lip aligner built on
it (``lip_aligner.visual_encoder`` in params), frozen or fine-tuned.

The weights are a randomly initialised encoder of a tiny config (auto_avsr's architecture with
narrow widths) saved as the zoo's flat E2E state dict, decoder and CTC tensors included; the
layout of the released base model is checked on the meta device (no memory) against tensor names
and shapes read off auto_avsr's espnet/nets/pytorch_backend/frontend/resnet.py,
e2e_asr_conformer.py, encoder/conformer_encoder.py and transformer/attention.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pretrained_support import TINY_AUTO_AVSR, save_auto_avsr_zoo_file
from typer.testing import CliRunner

from imagintalk.config import Params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.models.auto_avsr import AutoAVSRConfig, AutoAVSRVisualEncoder, load_auto_avsr, upstream_state_dict
from imagintalk.models.batch import random_batch
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.config import model_config
from imagintalk.models.imagintalk import ImaginTalk
from imagintalk.models.lip_aligner import LipAligner
from imagintalk.models.stages import trainable_parameters
from imagintalk.pretrained import catalogue, pull
from imagintalk.pretrained.cache import CACHE_ENV
from pipelines.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "auto-avsr-tiny"
FILE = "vsr_tiny.pth"
TINY = TINY_AUTO_AVSR

# name → shape for the base VSR model (adim 768, 12 heads, 3072 units, 12 blocks, kernel 31;
# Conv3dResNet: 64-channel stem, ResNet-18 widths 64/128/256/512)
UPSTREAM_BASE = {
    "frontend.frontend3D.0.weight": (64, 1, 5, 7, 7), "frontend.frontend3D.1.running_var": (64,),
    "frontend.trunk.layer1.0.conv1.weight": (64, 64, 3, 3), "frontend.trunk.layer1.1.bn2.bias": (64,),
    "frontend.trunk.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "frontend.trunk.layer2.0.downsample.1.running_mean": (128,),
    "frontend.trunk.layer4.1.conv2.weight": (512, 512, 3, 3),
    "proj_encoder.weight": (768, 512), "proj_encoder.bias": (768,),
    "encoder.encoders.0.self_attn.pos_bias_u": (12, 64), "encoder.encoders.0.self_attn.pos_bias_v": (12, 64),
    "encoder.encoders.0.self_attn.linear_q.weight": (768, 768),
    "encoder.encoders.0.self_attn.linear_pos.weight": (768, 768),
    "encoder.encoders.0.feed_forward_macaron.w_1.weight": (3072, 768),
    "encoder.encoders.0.feed_forward.w_2.weight": (768, 3072),
    "encoder.encoders.11.conv_module.pointwise_cov1.weight": (1536, 768, 1),
    "encoder.encoders.11.conv_module.depthwise_conv.weight": (768, 1, 31),
    "encoder.encoders.11.conv_module.norm.running_var": (768,),
    "encoder.encoders.11.conv_module.pointwise_cov2.bias": (768,),
    "encoder.encoders.11.norm_ff_macaron.weight": (768,), "encoder.encoders.11.norm_final.bias": (768,),
    "encoder.after_norm.weight": (768,),
}


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)


@pytest.fixture(scope="module")
def source() -> AutoAVSRVisualEncoder:
    torch.manual_seed(0)
    model = AutoAVSRVisualEncoder(AutoAVSRConfig(**TINY))
    _randomise_batchnorm(model)
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory, source) -> Path:
    return save_auto_avsr_zoo_file(source, tmp_path_factory.mktemp("served") / FILE)


@pytest.fixture(autouse=True)
def _no_deployment_env(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)


def _params_file(tmp_path: Path, **aligner) -> Path:
    """params.yaml with the tiny encoder as a catalogue entry, selected for the lip aligner."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "pretrained": {"cache_dir": str(tmp_path / "cache"), "components": {NAME: {
            "kind": "visual_encoder", "url": f"https://unreachable.invalid/{FILE}",
            "architecture": "imagintalk.models.auto_avsr.AutoAVSRVisualEncoder", "config": TINY,
            "licence": "Apache-2.0"}}},
        "storage": {"root": str(tmp_path / "store")},
        "lip_aligner": {"visual_encoder": NAME, **aligner},
    }))
    return path


def _load_params(path: Path) -> Params:
    return Params.model_validate(yaml.safe_load(path.read_text()))


def test_the_base_configs_tensors_have_upstream_names_and_shapes():
    with torch.device("meta"):
        model = AutoAVSRVisualEncoder(AutoAVSRConfig(**catalogue()["auto-avsr-vsr-lrs3-base"].config))
    state = model.state_dict()
    assert {k: tuple(state[k].shape) for k in UPSTREAM_BASE} == UPSTREAM_BASE
    assert "encoder.encoders.0.self_attn.linear_pos.bias" not in state   # upstream: bias=False
    assert not any(k.startswith(("encoder.embed", "encoder.encoders.12.")) for k in state)
    assert sum(p.numel() for p in model.parameters()) == 182_028_224
    legacy = upstream_state_dict(model, legacy=True)                      # the 2023 release's names
    assert tuple(legacy["encoder.embed.0.weight"].shape) == (768, 512)
    assert tuple(legacy["encoder.frontend.trunk.layer4.1.conv2.weight"].shape) == (512, 512, 3, 3)


def test_a_tiny_checkpoint_in_the_upstream_format_loads_and_encodes_each_frame(source, weights, tmp_path):
    cfg = AutoAVSRConfig(**TINY)
    loaded = load_auto_avsr(weights, cfg)
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    legacy = load_auto_avsr(save_auto_avsr_zoo_file(source, tmp_path / "legacy.pth", legacy=True), cfg)
    assert all(torch.equal(legacy.state_dict()[k], v) for k, v in source.state_dict().items())
    g = torch.Generator().manual_seed(1)
    lips = torch.rand(2, 12, 88, 88, generator=g)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    with torch.no_grad():
        out = loaded(lips, mask)
        alone = loaded(lips[1:, :7], mask[1:, :7])
    assert out.shape == (2, 12, 32) and torch.isfinite(out).all()
    assert not out[1, 7:].any()                                          # zeros at padded frames
    torch.testing.assert_close(out[1, :7], alone[0], atol=1e-5, rtol=1e-5)  # padding changes nothing


def test_a_file_that_is_not_an_auto_avsr_checkpoint_is_refused_in_one_line_naming_it(weights, tmp_path):
    cfg = AutoAVSRConfig(**TINY)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    foreign = tmp_path / "dac.pth"
    torch.save({"state_dict": {"encoder.block.0.weight_v": torch.zeros(4, 1, 7)}, "metadata": {}}, foreign)
    deeper = AutoAVSRConfig(**{**TINY, "elayers": 3})
    wider = AutoAVSRConfig(**{**TINY, "adim": 48})
    for path, c, why in ((text, cfg, "unreadable"), (foreign, cfg, "not an auto_avsr VSR checkpoint"),
                         (weights, deeper, "encoder.encoders.2.* missing"),
                         (weights, wider, "has shape")):
        with pytest.raises(ArtifactError, match=why) as err:
            load_auto_avsr(path, c)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_choices_are_config_errors(tmp_path, monkeypatch):
    params = _load_params(_params_file(tmp_path))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("IMAGINTALK_STORAGE_ROOT", str(tmp_path / "store"))
    with pytest.raises(ConfigError, match="dac-16khz is a codec, not a visual encoder"):
        model_config("tiny", params.model_copy(update={"lip_aligner": params.lip_aligner.model_copy(
            update={"visual_encoder": "dac-16khz"})}))
    with pytest.raises(ConfigError, match="loader.crop.*trained on 88×88"):
        model_config("tiny", params.model_copy(update={"loader": params.loader.model_copy(update={"crop": 96})}))
    with pytest.raises(ValueError, match="pretrained_frontend must then be null"):
        model_config("tiny", params).with_updates(lip_aligner={"pretrained_frontend": "x.pth"})
    with pytest.raises(ArtifactError, match=f"imagintalk models pull {NAME}"):
        LipAligner(model_config("tiny", params))                         # not pulled yet


@pytest.mark.parametrize("frozen", [True, False])
def test_the_aligner_resolves_the_encoder_from_the_cache_frozen_or_fine_tuned(
        frozen, source, weights, tmp_path, monkeypatch):
    params_file = _params_file(tmp_path, freeze_visual_encoder=frozen)
    result = CliRunner().invoke(app, ["models", "pull", NAME, "--from", str(weights), "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    cfg = model_config("tiny", _load_params(params_file))
    assert cfg.lip_aligner.visual_encoder_source["config"] == TINY
    # a worker: its params.yaml does not list the component, the model config's record does
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    torch.manual_seed(0)
    aligner = LipAligner(cfg).train()
    enc = aligner.visual_encoder
    assert aligner.frontend is None and aligner.proj_in.in_features == 32
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())
    assert all(p.requires_grad != frozen for p in enc.parameters())
    assert enc.training != frozen and not enc.frontend.trunk.layer1[0].bn1.training  # statistics stay fixed
    opt = torch.optim.SGD(trainable_parameters(aligner), lr=0.1)
    loss, _ = aligner.loss(random_batch(cfg.vocab, [6, 4], seed=3))
    loss.backward()
    opt.step()
    after = enc.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if frozen:
        assert changed == [] and all(p.grad is None for p in enc.parameters())
    else:
        assert any(k.startswith("encoder.encoders.") for k in changed)
        assert "frontend.frontend3D.0.weight" in changed
        assert not any("running_" in k for k in changed)
    assert aligner.proj_in.weight.grad is not None
    # a registered model's load builds the architecture only: no file is read
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "empty"))
    bare = LipAligner(cfg.with_updates(lip_aligner={"load_pretrained": False}))
    assert bare.state_dict().keys() == aligner.state_dict().keys()


def test_a_saved_composite_reloads_without_the_weight_file(weights, tmp_path, monkeypatch):
    params_file = _params_file(tmp_path)
    cfg = model_config("tiny", _load_params(params_file))
    pull(NAME, source=weights, params=_load_params(params_file))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = ImaginTalk(cfg, ResidualCodebookDecoder.random(cfg.vocab, seed=1)).eval()
    batch = random_batch(cfg.vocab, [6, 4], seed=5)
    out = model.generate_batch(batch, steps=2, seed=0)
    model.save(tmp_path / "m")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))      # the serving machine has no copy
    loaded = ImaginTalk.load(tmp_path / "m")
    assert loaded.refiner.aligner.visual_encoder is not None
    assert torch.equal(loaded.generate_batch(batch, steps=2, seed=0).mel, out.mel)
