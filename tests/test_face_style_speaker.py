"""The face-style adapter's auxiliary speaker loss: c_id, through a projection, toward the GE2E
embedding of the ground-truth audio; used by the style-DiT stage; never at inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imagintalk.models.batch import random_batch
from imagintalk.models.codec_decoder import ResidualCodebookDecoder
from imagintalk.models.face_style import FaceStyleAdapter, SpeakerVoices, StyleOutput
from imagintalk.models.imagintalk import ImaginTalk
from imagintalk.models.stages import build_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _face(cfg):
    """The end-to-end face path (``id_source: face``), the one with the projection."""
    return cfg.with_updates(face_style={"id_source": "face"})


def test_speaker_loss_is_weighted_l1_and_off_without_weight_or_target(cfg):
    torch.manual_seed(0)
    cfg = _face(cfg)
    style = FaceStyleAdapter(cfg)
    c_id = torch.randn(3, cfg.face_style.dim)
    out = StyleOutput(c_id=c_id, c_emo=torch.zeros(3, 1, cfg.face_style.dim), emo_known=torch.ones(3, dtype=bool))
    speaker = F.normalize(torch.randn(3, cfg.vocab.speaker_dim), dim=-1)
    loss, metrics = style.speaker_loss(out, speaker)
    target = speaker * cfg.vocab.speaker_dim ** 0.5
    expected = (style.speaker_proj(c_id) - target).abs().mean() * cfg.face_style.speaker_weight
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"speaker_l1", "speaker_cos"}
    assert float(style.speaker_loss(out, None)[0]) == 0.0
    off = FaceStyleAdapter(cfg.with_updates(face_style={"speaker_weight": 0.0}))
    assert float(off.speaker_loss(out, speaker)[0]) == 0.0 and off.speaker_loss(out, speaker)[1] == {}


def test_each_identity_path_builds_only_its_own_parts(cfg):
    face = set(FaceStyleAdapter(_face(cfg)).state_dict())
    voice = set(FaceStyleAdapter(cfg.with_updates(face_style={"id_source": "voice"})).state_dict())
    assert any(k.startswith("face_encoder.") for k in face) and not any(k.startswith("voice_") for k in face)
    assert not any(k.startswith(("face_encoder.", "id_mlp.", "speaker_proj.")) for k in voice)
    assert any(k.startswith("voice_pred.") for k in voice)


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
        aux, m = stage.face_style.speaker_loss(style, batch["speaker"])
        opt.zero_grad()
        aux.backward()
        opt.step()
    assert abs(before) < 0.3 and m["speaker_cos"] > 0.9


def test_inference_never_uses_the_projection(cfg):
    torch.manual_seed(0)
    cfg = _face(cfg)
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
    cfg = _face(cfg)
    old = {k: v for k, v in FaceStyleAdapter(cfg).state_dict().items() if not k.startswith("speaker_proj.")}
    fresh = FaceStyleAdapter(cfg)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.id_mlp[0].weight, old["id_mlp.0.weight"])


def test_voice_bottleneck_c_id_reads_only_the_face_descriptor_at_inference(cfg):
    torch.manual_seed(0)
    vcfg = cfg.with_updates(face_style={"id_source": "voice", "voice_teacher": 1.0})
    style = FaceStyleAdapter(vcfg).eval()
    batch = random_batch(cfg.vocab, [5, 4], seed=7)
    args = (batch["identity"], batch["face"], batch["emotion"], batch["lip_mask"])
    out = style(*args, speaker=batch["speaker"])
    other_face = style(batch["identity"], torch.zeros_like(batch["face"]), batch["emotion"], batch["lip_mask"])
    torch.testing.assert_close(out.c_id, other_face.c_id)          # the crop is not read
    torch.testing.assert_close(out.c_id, style(*args).c_id)        # the audio's voice is not read at inference
    expected = style.voice_in(F.normalize(style.voice_pred(batch["identity"]), dim=-1) * cfg.vocab.speaker_dim ** 0.5)
    torch.testing.assert_close(out.c_id, expected)
    # training with voice_teacher 1: the DiT reads the ground-truth voice instead
    teach = style.train()(*args, speaker=batch["speaker"])
    gt = style.voice_in(F.normalize(batch["speaker"].float(), dim=-1) * cfg.vocab.speaker_dim ** 0.5)
    torch.testing.assert_close(teach.c_id, gt)


def test_voice_bottleneck_prediction_learns_the_voice_and_the_dit_cannot_move_it(cfg):
    torch.manual_seed(0)
    vcfg = cfg.with_updates(face_style={"id_source": "voice"})
    stage = build_stage("style_dit", vcfg).train()
    batch = random_batch(cfg.vocab, [6, 5, 4], seed=3)
    loss, metrics = stage.loss(batch)
    loss.backward()
    assert stage.face_style.voice_pred[1].weight.grad is not None
    # only the speaker term moves the predictor: the DiT's loss alone leaves it untouched
    stage.zero_grad()
    style = stage.face_style(batch["identity"], batch["face"], batch["emotion"], batch["lip_mask"], batch["speaker"])
    style.c_id.sum().backward()
    assert stage.face_style.voice_pred[1].weight.grad is None or not stage.face_style.voice_pred[1].weight.grad.any()
    opt = torch.optim.Adam(stage.face_style.voice_pred.parameters(), lr=3e-3)
    for _ in range(80):
        style = stage.face_style(batch["identity"], batch["face"], batch["emotion"], batch["lip_mask"])
        aux, m = stage.face_style.speaker_loss(style, batch["speaker"])
        opt.zero_grad()
        aux.backward()
        opt.step()
    assert m["speaker_cos"] > 0.9


def test_voice_bottleneck_trains_on_a_batch_of_one_clip(cfg):
    torch.manual_seed(0)
    style = FaceStyleAdapter(cfg.with_updates(face_style={"id_source": "voice"})).train()
    batch = random_batch(cfg.vocab, [5], seed=2)
    out = style(batch["identity"], batch["face"], batch["emotion"], batch["lip_mask"], batch["speaker"])
    assert out.c_id.shape == (1, cfg.face_style.dim) and style.voice_pred[0].training


def test_speaker_voices_are_running_means_of_each_speakers_clips():
    voices = SpeakerVoices()
    a1, a2, b1 = (F.normalize(torch.randn(1, 8), dim=-1) for _ in range(3))
    first = voices(["synth/spkA/0", "synth/spkB/0"], torch.cat([a1, b1]))
    torch.testing.assert_close(first, torch.cat([a1, b1]))
    second = voices(["synth/spkA/1", "other/spkA/0"], torch.cat([a2 * 3.0, a2]))  # norm is ignored
    torch.testing.assert_close(second[0], F.normalize(a1[0] + a2[0], dim=-1))
    torch.testing.assert_close(second[1], a2[0])  # another corpus's spkA is another speaker
    # keys that do not name a speaker, or no keys: the clip's own (unit) embedding
    torch.testing.assert_close(voices(["odd-key"], a1 * 2), a1)
    torch.testing.assert_close(voices(None, a1 * 2), a1)


@pytest.mark.parametrize("target", ["speaker", "clip"])
def test_style_stage_teaches_with_the_speakers_voice_not_the_clips(cfg, target):
    torch.manual_seed(0)
    stage = build_stage("style_dit", cfg.with_updates(face_style={"voice_target": target})).train()
    batch = random_batch(cfg.vocab, [6, 5, 4], seed=3)
    batch["keys"] = ["synth/spkA/0", "synth/spkA/1", "synth/spkB/0"]
    seen = []
    stage.face_style.speaker_loss = lambda style, speaker: (seen.append(speaker), (style.c_id.sum() * 0, {}))[1]
    stage.loss(batch)
    own = F.normalize(batch["speaker"].float(), dim=-1)
    if target == "speaker":
        torch.testing.assert_close(seen[0][:2], F.normalize(own[0] + own[1], dim=-1).expand(2, -1))
        torch.testing.assert_close(seen[0][2], own[2])
        assert set(stage.voices.sums) == {"synth/spkA", "synth/spkB"}
    else:
        torch.testing.assert_close(seen[0], batch["speaker"])
        assert stage.voices.sums == {}
