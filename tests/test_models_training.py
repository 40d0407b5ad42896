"""Overfit tests: a few hundred steps on a tiny fixed batch drive each stage's loss well down.

``initial`` is the mean loss of the untrained stage over a few draws (masking and crops are
random), ``final`` the mean over the last steps of training; each must fall below 0.3× initial.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagintalk.config import Params
from imagintalk.models.batch import random_batch
from imagintalk.models.config import model_config
from imagintalk.models.stages import build_stage, trainable_parameters

RATIO = 0.3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def overfit(stage: torch.nn.Module, batch: dict, steps: int, lr: float = 3e-3) -> tuple[float, float, dict]:
    torch.manual_seed(0)
    stage.train()
    with torch.no_grad():
        initial = sum(float(stage.loss(batch)[0]) for _ in range(4)) / 4
    opt = torch.optim.Adam(trainable_parameters(stage), lr=lr)
    history, metrics = [], {}
    for _ in range(steps):
        loss, metrics = stage.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    final = sum(history[-10:]) / 10
    print(f"{type(stage).__name__}: initial {initial:.3f} → final {final:.3f} ({final / initial:.3f}×)")
    return initial, final, metrics


def test_lip_aligner_overfits_a_fixed_batch(cfg):
    torch.manual_seed(0)
    batch = random_batch(cfg.vocab, [5, 3], seed=10)
    initial, final, metrics = overfit(build_stage("lip_aligner", cfg), batch, steps=60)
    assert final < RATIO * initial
    assert metrics["unit_acc"] > 0.9


def test_unit_bert_overfits_a_fixed_batch(cfg):
    torch.manual_seed(0)
    batch = random_batch(cfg.vocab, [8, 8], seed=11)
    initial, final, _ = overfit(build_stage("unit_bert", cfg), batch, steps=200)
    assert final < RATIO * initial


def test_error_detector_learns_the_aligner_mistakes_and_refinement_fixes_them(cfg):
    torch.manual_seed(0)
    stage = build_stage("error_detector", cfg)
    batch = random_batch(cfg.vocab, [6, 5], seed=12)
    with torch.no_grad():
        al = stage.aligner(batch["lips"], batch["lip_mask"])
    # Half of the targets agree with the (frozen) aligner, so the detector must tell them apart.
    batch["units"][:, ::2] = al.logits.argmax(-1)[:, ::2] * batch["unit_mask"][:, ::2]
    initial, final, metrics = overfit(stage, batch, steps=150)
    assert final < RATIO * initial
    assert 0.3 < metrics["aligner_uer"] < 0.7
    assert metrics["detector_acc"] > 0.95
    stage.eval()
    with torch.no_grad():
        ref = stage.refine(batch["lips"], batch["lip_mask"])
    mask = ref.mask
    uer_before = float((ref.aligner_units != batch["units"])[mask].float().mean())
    uer_after = float((ref.units != batch["units"])[mask].float().mean())
    print(f"unit error rate: aligner {uer_before:.2f} → refined {uer_after:.2f}")
    assert uer_after < 0.5 * uer_before


def test_style_dit_overfits_a_fixed_batch(cfg):
    torch.manual_seed(0)
    batch = random_batch(cfg.vocab, [6, 4], seed=13)
    initial, final, _ = overfit(build_stage("style_dit", cfg), batch, steps=120)
    assert final < RATIO * initial


def test_style_dit_with_teacher_forced_c_lip_trains_too(cfg):
    torch.manual_seed(0)
    tcfg = cfg.with_updates(style_dit={"c_lip_source": "ground_truth"})
    batch = random_batch(cfg.vocab, [4, 3], seed=14)
    initial, final, _ = overfit(build_stage("style_dit", tcfg), batch, steps=30)
    assert final < 0.6 * initial


def test_vocoder_overfits_a_fixed_batch(cfg):
    torch.manual_seed(0)
    batch = random_batch(cfg.vocab, [8, 8], seed=15)
    initial, final, metrics = overfit(build_stage("vocoder", cfg), batch, steps=300)
    assert final < RATIO * initial
    assert metrics["mel_l1"] < 1.5


def test_vocoder_stage_learns_from_the_decoded_codec_tokens(cfg):
    """With the shards' codec, the vocoder's input is what the codec decoder gives for the clip's
    own tokens (what it receives at inference), not the ground-truth mel."""
    from imagintalk.models.codec_decoder import ResidualCodebookDecoder, decode_batch

    codec = ResidualCodebookDecoder.random(cfg.vocab, seed=3)
    batch = random_batch(cfg.vocab, [6, 4], seed=17)
    stage = build_stage("vocoder", cfg, {"codec": codec})
    mel = stage.vocoder_input(batch)
    expected = decode_batch(codec, batch["codes"], batch["unit_mask"].sum(dim=1), cfg.vocab.n_mels, 2)
    assert torch.equal(mel, expected[:, :, : batch["mel"].shape[2]])
    assert not torch.equal(mel, batch["mel"].float())
    assert not any(p.requires_grad for p in stage.codec.parameters()) and "codec.codebooks" in dict(
        stage.named_buffers())
    gt = build_stage("vocoder", cfg.with_updates(vocoder={"input": "mel"}), {"codec": codec})
    assert gt.codec is None and torch.equal(gt.vocoder_input(batch), batch["mel"])
    loss, metrics = stage.loss(batch)
    assert torch.isfinite(loss) and metrics["mel_l1"] > 0


@pytest.mark.slow
def test_base_preset_trains_every_stage_a_few_steps_and_generates():
    """The base preset (true ResNet-18 trunk, adversarial vocoder) end to end on CPU."""
    from imagintalk.models.codec_decoder import ResidualCodebookDecoder
    from imagintalk.models.imagintalk import ImaginTalk

    cfg = model_config("base", Params())
    batch = random_batch(cfg.vocab, [5, 4], seed=16)
    codec = ResidualCodebookDecoder.random(cfg.vocab)
    parts: dict[str, torch.nn.Module] = {}
    for stage in ("vocoder", "unit_bert", "lip_aligner", "error_detector", "style_dit"):
        torch.manual_seed(0)
        module = build_stage(stage, cfg, {"lip_aligner": parts.get("lip_aligner"), "unit_bert": parts.get("unit_bert"),
                                          "refiner": parts.get("refiner"), "codec": codec})
        opt = torch.optim.Adam(trainable_parameters(module), lr=1e-4)
        losses = []
        for _ in range(3):
            loss, _ = module.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert all(np.isfinite(losses)), (stage, losses)
        parts[stage] = module
        if stage == "error_detector":
            parts["refiner"] = module
    model = ImaginTalk(cfg, codec, refiner=parts["refiner"],
                       face_style=parts["style_dit"].face_style, dit=parts["style_dit"].dit,
                       vocoder=parts["vocoder"].vocoder)
    out = model.generate_batch(batch, steps=4, seed=0, guidance={"lip": 1.0, "id": 1.0, "emo": 1.0})
    assert out.lengths.tolist() == [3200, 2560] and torch.isfinite(out.waveforms).all()
