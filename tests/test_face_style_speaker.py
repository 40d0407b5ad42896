"""The face-style adapter's auxiliary speaker loss: c_id, through a projection, toward the GE2E
embedding of the ground-truth audio; used by the style-DiT stage; never at inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imagintalk.models.batch import random_batch
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.face_style import FaceStyleAdapter
from imagintalk.models.imagintalk import ImaginTalk
from imagintalk.models.stages import build_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_speaker_loss_is_weighted_l1_and_off_without_weight_or_target(cfg):
    torch.manual_seed(0)
    style = FaceStyleAdapter(cfg)
    c_id = torch.randn(3, cfg.face_style.dim)
    speaker = F.normalize(torch.randn(3, cfg.vocab.speaker_dim), dim=-1)
    loss, metrics = style.speaker_loss(c_id, speaker)
    target = speaker * cfg.vocab.speaker_dim ** 0.5
    expected = (style.speaker_proj(c_id) - target).abs().mean() * cfg.face_style.speaker_weight
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"speaker_l1", "speaker_cos"}
    assert float(style.speaker_loss(c_id, None)[0]) == 0.0
    off = FaceStyleAdapter(cfg.with_updates(face_style={"speaker_weight": 0.0}))
    assert float(off.speaker_loss(c_id, speaker)[0]) == 0.0 and off.speaker_loss(c_id, speaker)[1] == {}


def test_style_stage_loss_adds_the_speaker_term_and_pulls_c_id_toward_the_voice(cfg):
    torch.manual_seed(0)
    stage = build_stage("style_dit", cfg).train()
    batch = random_batch(cfg.vocab, [6, 5, 4], seed=3)
    loss, metrics = stage.loss(batch)
    assert {"speaker_l1", "speaker_cos", "dit_loss"} <= set(metrics)
    assert metrics["loss"] == pytest.approx(metrics["dit_loss"] + cfg.face_style.speaker_weight
                                            * metrics["speaker_l1"], rel=1e-4)
    # only the speaker term, optimised: the projected c_id lines up with each clip's embedding
    opt = torch.optim.Adam(stage.face_style.parameters(), lr=3e-3)
    before = metrics["speaker_cos"]
    for _ in range(60):
        style = stage.face_style(batch["identity"], batch["face"], batch["emotion"], batch["lip_mask"])
        aux, m = stage.face_style.speaker_loss(style.c_id, batch["speaker"])
        opt.zero_grad()
        aux.backward()
        opt.step()
    assert abs(before) < 0.3 and m["speaker_cos"] > 0.9


def test_inference_never_uses_the_projection(cfg):
    torch.manual_seed(0)
    model = ImaginTalk(cfg, ResidualCodebookDecoder.random(cfg.vocab, seed=1))
    batch = random_batch(cfg.vocab, [5, 4], seed=7)
    calls = []
    model.face_style.speaker_proj.register_forward_hook(lambda *_: calls.append(1))
    args = (batch["lips"], batch["lip_mask"], batch["identity"], batch["face"], batch["emotion"])
    first = model.generate(*args, steps=2, seed=0)
    with torch.no_grad():
        model.face_style.speaker_proj.weight.add_(1.0)
    second = model.generate(*args, steps=2, seed=0)
    assert calls == []
    torch.testing.assert_close(first.waveforms, second.waveforms)


def test_an_adapter_saved_before_the_speaker_loss_still_loads_strictly(cfg):
    torch.manual_seed(0)
    old = {k: v for k, v in FaceStyleAdapter(cfg).state_dict().items() if not k.startswith("speaker_proj.")}
    fresh = FaceStyleAdapter(cfg)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.id_mlp[0].weight, old["id_mlp.0.weight"])
