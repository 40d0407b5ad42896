"""Model parts: shapes, padding masks, gradients, pretrained front-end, emotion smoothing, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagintalk.config import Params, TokenizerConfig
from imagintalk.errors import ConfigError
from imagintalk.models.batch import random_batch
from imagintalk.models.config import model_config
from imagintalk.models.error_detector import LipRefiner
from imagintalk.models.face_style import FaceStyleAdapter
from imagintalk.models.lip_aligner import LipAligner, VisualFrontend
from imagintalk.models.stages import STAGES, build_stage, trainable_parameters
from imagintalk.models.style_dit import StyleDiT
from imagintalk.models.unit_bert import UnitBert
from imagintalk.models.vocoder import NeuralVocoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pad_time(x: torch.Tensor, dim: int, extra: int, garbage: bool = True) -> torch.Tensor:
    """Append ``extra`` steps of random garbage along ``dim`` (what a loader's padding might hold)."""
    shape = list(x.shape)
    shape[dim] = extra
    g = torch.Generator().manual_seed(123)
    if x.dtype == torch.bool:
        pad = torch.zeros(shape, dtype=torch.bool)
    elif x.dtype.is_floating_point:
        pad = torch.randn(shape, generator=g) if garbage else torch.zeros(shape)
    else:
        pad = torch.randint(0, 50, shape, generator=g).to(x.dtype)
    return torch.cat([x, pad], dim=dim)


def test_aligner_shapes_and_padding_never_changes_valid_outputs_even_in_train_mode(cfg):
    torch.manual_seed(0)
    aligner = LipAligner(cfg).train()
    b = random_batch(cfg.vocab, [6, 4], seed=1)
    out = aligner(b["lips"], b["lip_mask"])
    assert out.logits.shape == (2, 12, cfg.vocab.num_units)
    assert out.features.shape == (2, 12, aligner.feature_dim)
    assert out.mask.sum(1).tolist() == [12, 8]
    padded = aligner(_pad_time(b["lips"], 1, 3), _pad_time(b["lip_mask"], 1, 3))
    m = out.mask
    torch.testing.assert_close(padded.logits[:, :12][m], out.logits[m], atol=1e-5, rtol=1e-4)
    # The short sample's padded tail holds garbage lips: its valid outputs must not see them.
    noisy = b["lips"].clone()
    noisy[1, 4:] = torch.randn(2, 88, 88)
    torch.testing.assert_close(aligner(noisy, b["lip_mask"]).logits[m], out.logits[m], atol=1e-5, rtol=1e-4)


def test_bert_detector_and_refiner_ignore_padding(cfg):
    torch.manual_seed(0)
    refiner = LipRefiner(cfg).eval()
    b = random_batch(cfg.vocab, [6, 3], seed=2)
    units, mask = b["units"], b["unit_mask"]
    bert = refiner.bert
    ref = bert(units, mask)
    pad = bert(_pad_time(units, 1, 5), _pad_time(mask, 1, 5))
    torch.testing.assert_close(pad.logits[:, :12][mask], ref.logits[mask], atol=1e-5, rtol=1e-4)
    feats = torch.randn(2, 12, refiner.aligner.feature_dim) * mask[..., None]
    d_ref = refiner.detector(feats, units, mask)
    d_pad = refiner.detector(_pad_time(feats, 1, 5), _pad_time(units, 1, 5), _pad_time(mask, 1, 5))
    torch.testing.assert_close(d_pad[:, :12][mask], d_ref[mask], atol=1e-5, rtol=1e-4)
    r1 = refiner.refine(b["lips"], b["lip_mask"], threshold=0.0)
    r2 = refiner.refine(_pad_time(b["lips"], 1, 2), _pad_time(b["lip_mask"], 1, 2), threshold=0.0)
    assert r1.c_lip.shape == (2, 12, bert.dim) and r2.c_lip.shape == (2, 16, bert.dim)
    assert torch.equal(r2.units[:, :12][mask], r1.units[mask])
    torch.testing.assert_close(r2.c_lip[:, :12][mask], r1.c_lip[mask], atol=1e-5, rtol=1e-4)


def test_refine_threshold_controls_which_units_are_repredicted(cfg):
    torch.manual_seed(0)
    refiner = LipRefiner(cfg).eval()
    b = random_batch(cfg.vocab, [5, 5], seed=3)
    with torch.no_grad():
        none = refiner.refine(b["lips"], b["lip_mask"], threshold=1.0)
        assert not none.flagged.any() and torch.equal(none.units, none.aligner_units)
        one = refiner.refine(b["lips"], b["lip_mask"], rounds=1, threshold=0.0)  # every position flagged
        assert one.flagged.all()
        al = refiner.aligner(b["lips"], b["lip_mask"])
        masked = torch.full_like(one.units, refiner.bert.mask_id)
        bert = refiner.bert(masked, al.mask, refiner.lip_condition(al, masked)).logits.log_softmax(-1)
        fused = (bert + al.logits.log_softmax(-1)).argmax(-1)  # the default decision: both opinions
        assert torch.equal(one.units, fused)
        refiner.cfg = refiner.cfg.model_copy(update={"decision": "replace"})
        replaced = refiner.refine(b["lips"], b["lip_mask"], rounds=1, threshold=0.0)
    assert torch.equal(replaced.units, bert.argmax(-1))  # the BERT alone decides
    ablation = refiner.refine(b["lips"], b["lip_mask"], rounds=0)
    assert torch.equal(ablation.units, ablation.aligner_units)


def test_style_dit_and_face_style_ignore_padding(cfg):
    torch.manual_seed(0)
    style, dit = FaceStyleAdapter(cfg).eval(), StyleDiT(cfg, 64).eval()
    b = random_batch(cfg.vocab, [7, 4], seed=4, emotion_per_frame=True)
    s = style(b["identity"], b["face"], b["emotion"], b["lip_mask"])
    assert s.c_id.shape == (2, 64) and s.c_emo.shape == (2, 14, 64)
    s_pad = style(b["identity"], b["face"], _pad_time(b["emotion"], 1, 3), _pad_time(b["lip_mask"], 1, 3))
    mask = b["unit_mask"]
    torch.testing.assert_close(s_pad.c_emo[:, :14][mask], s.c_emo[mask], atol=1e-6, rtol=1e-5)
    c_lip = torch.randn(2, 14, 64)
    t = torch.tensor([0.3, 0.9])
    logits = dit(b["codes"], t, mask, c_lip, s.c_id, s.c_emo)
    assert logits.shape == (2, cfg.vocab.codec_levels, 14, cfg.vocab.codebook_size)
    pad = dit(_pad_time(b["codes"], 2, 6), t, _pad_time(mask, 1, 6), _pad_time(c_lip, 1, 6), s.c_id,
              _pad_time(s.c_emo, 1, 6))
    torch.testing.assert_close(pad[:, :, :14][mask[:, None].expand(-1, 8, -1)],
                               logits[mask[:, None].expand(-1, 8, -1)], atol=1e-5, rtol=1e-4)


def test_style_dit_training_loss_projects_only_the_masked_tokens_and_equals_the_dense_loss(cfg):
    """The loss scores masked (level, position) pairs only: their logits, projected alone, equal
    the full forward's, and the loss equals the dense cross-entropy averaged over them."""
    torch.manual_seed(0)
    dit = StyleDiT(cfg, 64).eval()
    b = random_batch(cfg.vocab, [9, 5], seed=2)
    mask, codes = b["unit_mask"], b["codes"].long()
    n = mask.shape[1]
    c_lip, c_id, c_emo = torch.randn(2, n, 64), torch.randn(2, 64), torch.randn(2, n, 64)
    t = torch.tensor([0.4, 0.8])
    masked = (torch.rand(codes.shape) < 0.5) & mask[:, None]
    inputs = torch.where(masked, dit.mask_id, codes)
    dense = dit(inputs, t, mask, c_lip, c_id, c_emo)
    parts = dit.masked_logits(dit.hidden(inputs, t, mask, c_lip, c_id, c_emo), masked)
    assert sum(len(logits) for logits, _ in parts) == int(masked.sum())
    for level, (logits, (bi, ni)) in enumerate(parts):
        torch.testing.assert_close(logits, dense[bi, level, ni], atol=1e-5, rtol=1e-5)
    # the training loss: the same RNG draws, then the dense reference over the same masked tokens
    torch.manual_seed(7)
    loss, metrics = dit.loss(codes, mask, c_lip, c_id, c_emo)
    torch.manual_seed(7)
    lv = codes.shape[1]
    gamma = torch.cos(0.5 * torch.pi * torch.rand(2)).clamp_min(1.0 / (lv * n))
    valid = mask[:, None, :].expand_as(codes)
    u = torch.rand(codes.shape)
    from imagintalk.models.unit_bert import force_one_per_row
    masked = force_one_per_row(((u < gamma[:, None, None]) & valid).flatten(1), valid.flatten(1),
                               -u.flatten(1)).view(codes.shape)
    keep = [torch.rand(2) >= p for p in (dit.cfg.drop_lip, dit.cfg.drop_id, dit.cfg.drop_emo)]
    target = torch.where(valid, codes, torch.zeros_like(codes))
    logits = dit(torch.where(masked, dit.mask_id, target), gamma, mask, c_lip, c_id, c_emo, *keep)
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2), target, reduction="none")
    torch.testing.assert_close(loss, ce[masked].mean(), atol=1e-5, rtol=1e-5)
    assert metrics["masked_acc"] == pytest.approx(float((logits.argmax(-1) == target)[masked].float().mean()))


def test_vocoder_waveform_lengths_follow_the_mel_lengths_and_ignore_padding(cfg):
    torch.manual_seed(0)
    voc = NeuralVocoder(cfg).eval()
    mel = torch.randn(2, 80, 24) - 4
    lengths = torch.tensor([24, 15])
    wave, wl = voc(mel, lengths)
    assert wave.shape == (2, 24 * 160) and wl.tolist() == [24 * 160, 15 * 160]
    assert torch.all(wave[1, 15 * 160:] == 0)
    alone, _ = voc(mel[1:, :, :15])
    torch.testing.assert_close(wave[1, : 15 * 160], alone[0], atol=1e-5, rtol=1e-4)
    garbage = mel.clone()
    garbage[1, :, 15:] = 50.0
    torch.testing.assert_close(voc(garbage, lengths)[0], wave, atol=1e-5, rtol=1e-4)


def test_emotion_is_smoothed_over_half_a_second_with_a_box_window(cfg):
    style = FaceStyleAdapter(cfg).eval()
    n_frames, switch = 40, 20
    labels = torch.zeros(n_frames, dtype=torch.long)
    labels[switch:] = 3
    probs = torch.nn.functional.one_hot(labels, 9).float()[None]
    mask = torch.ones(1, n_frames, dtype=torch.bool)
    with torch.no_grad():
        c_emo, known = style.emotion_style(probs, mask)
        table = style.emo_embed.weight.numpy()
    assert known.tolist() == [True] and c_emo.shape == (1, 2 * n_frames, 64)
    per_frame = table[labels.numpy()]
    half = 6  # 13-frame window = 0.52 s at 25 fps
    expect = np.stack([per_frame[max(0, j - half): j + half + 1].mean(0) for j in range(n_frames)])
    np.testing.assert_allclose(c_emo[0, ::2].numpy(), expect, atol=1e-5)
    np.testing.assert_allclose(c_emo[0, 1::2].numpy(), expect, atol=1e-5)  # 25 → 50 Hz
    # the change spreads over the window: pure class 0 until switch-7, pure class 3 from switch+6
    np.testing.assert_allclose(expect[switch - 7], table[0], atol=1e-6)
    np.testing.assert_allclose(expect[switch + 6], table[3], atol=1e-6)
    # a clip-level label equals its one-hot probabilities; a negative label is "unknown"
    with torch.no_grad():
        by_label, _ = style.emotion_style(torch.tensor([3, -1]), torch.ones(2, 10, dtype=torch.bool))
        by_probs, _ = style.emotion_style(torch.nn.functional.one_hot(torch.full((1, 10), 3), 9).float(),
                                          torch.ones(1, 10, dtype=torch.bool))
        _, known = style.emotion_style(torch.tensor([3, -1]), torch.ones(2, 10, dtype=torch.bool))
    torch.testing.assert_close(by_label[0], by_probs[0])
    assert known.tolist() == [True, False]


def test_emotion_temperature_sharpens_the_smoothed_reading_and_keeps_labels_and_padding(cfg):
    """0 → each window's most likely emotion; 0.5 → p² renormalised; a label (one-hot) and padded
    frames are unchanged by any temperature."""
    soft = FaceStyleAdapter(cfg).eval()
    table = soft.emo_embed.weight.detach()
    probs = torch.full((1, 30, 9), 0.05)
    probs[..., 2] = 0.3
    probs[..., 4] = 0.3
    probs[:, :, 4] += torch.linspace(-0.1, 0.1, 30)   # 2 leads early, 4 late
    probs[:, :, 2] -= torch.linspace(-0.1, 0.1, 30)
    mask = torch.ones(1, 30, dtype=torch.bool)
    mask[:, 25:] = False
    for t, pick in ((0.0, None), (0.5, 2.0)):
        hard = FaceStyleAdapter(cfg.with_updates(face_style={"emotion_temperature": t})).eval()
        hard.load_state_dict(soft.state_dict())
        with torch.no_grad():
            c_emo, known = hard.emotion_style(probs, mask)
            smoothed = soft.smooth(probs, mask)
        if pick is None:
            expect = table[smoothed.argmax(-1)[0]]
        else:
            sq = smoothed ** pick
            expect = (sq / sq.sum(-1, keepdim=True))[0] @ table
        np.testing.assert_allclose(c_emo[0, :50:2].numpy(), expect[:25].numpy(), atol=1e-5)
        assert not c_emo[0, 50:].any() and known.tolist() == [True]
        with torch.no_grad():
            by_label, _ = hard.emotion_style(torch.tensor([3]), torch.ones(1, 10, dtype=torch.bool))
        np.testing.assert_allclose(by_label[0].numpy(), table[3].expand(20, -1).numpy(), atol=1e-5)
    assert cfg.face_style.emotion_temperature == 1.0
    with pytest.raises(ValueError):
        cfg.with_updates(face_style={"emotion_temperature": -0.5})


@pytest.mark.parametrize("stage", STAGES)
def test_gradients_reach_every_trainable_parameter_of_each_stage(cfg, stage):
    cfg = cfg.with_updates(style_dit={"drop_lip": 0.5, "drop_id": 0.5, "drop_emo": 0.5},
                           vocoder={"adversarial": True})
    torch.manual_seed(0)
    module = build_stage(stage, cfg).train()
    b = random_batch(cfg.vocab, [6, 5, 4, 6], seed=5)
    b["emotion"][2] = -1
    for _ in range(3):  # condition dropout is random per sample: a few draws cover kept and dropped
        loss, metrics = module.loss(b)
        assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
        loss.backward()
    params = dict((n, p) for n, p in module.named_parameters() if p.requires_grad)
    assert params
    dead = [n for n, p in params.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert dead == []
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    if stage in ("error_detector", "style_dit"):
        assert frozen and all(p.grad is None for n, p in module.named_parameters() if not p.requires_grad)
    assert len(trainable_parameters(module)) == len(params)


def test_discriminator_learns_only_from_its_own_loss(cfg):
    cfg = cfg.with_updates(vocoder={"adversarial": True})
    torch.manual_seed(0)
    voc = NeuralVocoder(cfg)
    b = random_batch(cfg.vocab, [6, 6], seed=6)
    torch.manual_seed(1)
    voc.loss(b)[0].backward()
    combined = [p.grad.clone() for p in voc.discriminator.parameters()]
    voc.zero_grad()
    torch.manual_seed(1)
    mel, target = voc._crop(b)
    pred, _ = voc(mel)
    real, fake = voc.discriminator(target), voc.discriminator(pred.detach())
    sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for (r, _), (f, _) in zip(real, fake, strict=True)).backward()
    for g_all, p in zip(combined, voc.discriminator.parameters(), strict=True):
        torch.testing.assert_close(g_all, p.grad, atol=1e-6, rtol=1e-4)


def test_pretrained_frontend_loads_from_a_local_checkpoint_and_stays_frozen(cfg, tmp_path):
    torch.manual_seed(0)
    source = VisualFrontend(cfg.lip_aligner)
    with torch.no_grad():
        for mod in source.modules():
            if isinstance(mod, torch.nn.BatchNorm2d | torch.nn.BatchNorm3d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    ckpt = tmp_path / "vsr_frontend.pth"  # auto_avsr-style: a full model with an encoder.frontend prefix
    torch.save({"state_dict": {f"encoder.frontend.{k}": v for k, v in source.state_dict().items()}
                | {"decoder.embed.weight": torch.zeros(3, 3)}}, ckpt)
    pcfg = cfg.with_updates(lip_aligner={"pretrained_frontend": str(ckpt)})
    aligner = LipAligner(pcfg).train()
    for k, v in source.state_dict().items():
        assert torch.equal(aligner.frontend.state_dict()[k], v), k
    assert not any(p.requires_grad for p in aligner.frontend.parameters())
    assert not aligner.frontend.training  # BatchNorm statistics stay the pretrained ones
    before = aligner.frontend.trunk.layer1[0].bn1.running_mean.clone()
    loss, _ = aligner.loss(random_batch(cfg.vocab, [5, 4], seed=7))
    loss.backward()
    assert torch.equal(aligner.frontend.trunk.layer1[0].bn1.running_mean, before)
    assert all(p.grad is None for p in aligner.frontend.parameters())
    assert aligner.projector.weight.grad is not None

    wide = cfg.with_updates(lip_aligner={"pretrained_frontend": str(ckpt), "trunk_widths": (8, 16, 32, 128)})
    with pytest.raises(ConfigError, match="shape mismatch"):
        LipAligner(wide)
    with pytest.raises(ConfigError, match="not found"):
        LipAligner(cfg.with_updates(lip_aligner={"pretrained_frontend": str(tmp_path / "none.pth")}))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pth: not a readable torch checkpoint"):
        LipAligner(cfg.with_updates(lip_aligner={"pretrained_frontend": str(tmp_path / "junk.pth")}))


def test_config_takes_the_vocabulary_from_params_and_refuses_unknown_presets():
    params = Params(tokenizer=TokenizerConfig(k=100))
    cfg = model_config("tiny", params)
    assert cfg.vocab.num_units == 100
    assert UnitBert(cfg).head.out_features == 100
    with pytest.raises(ConfigError, match="huge: unknown model preset"):
        model_config("huge", params)
    with pytest.raises(ValueError, match="divisible"):
        cfg.with_updates(style_dit={"dim": 66, "heads": 4})


def test_bert_masking_selects_15_percent_of_valid_positions_split_80_10_10(cfg):
    bert = UnitBert(cfg)
    units = torch.randint(0, cfg.vocab.num_units, (64, 400))
    mask = torch.ones_like(units, dtype=torch.bool)
    mask[:, 300:] = False
    inputs, selected = bert.mask_units(units, mask, torch.Generator().manual_seed(0))
    assert not selected[:, 300:].any()
    assert abs(float(selected[:, :300].float().mean()) - 0.15) < 0.01
    sel_in, sel_units = inputs[selected], units[selected]
    masked = float((sel_in == bert.mask_id).float().mean())
    kept = float((sel_in == sel_units).float().mean())
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02  # ~10 % random (a few hit the same unit)
    assert torch.equal(inputs[~selected & mask], units[~selected & mask])


def test_emotion_smoothing_windows_span_half_a_second(cfg):
    from imagintalk.models.face_style import smoothing_kernel

    box = smoothing_kernel(cfg.face_style, cfg.vocab.fps)
    gauss = smoothing_kernel(cfg.face_style.model_copy(update={"smoothing": "gaussian"}), cfg.vocab.fps)
    for k in (box, gauss):
        assert k.numel() == 13 and float(k.sum()) == pytest.approx(1.0)
        assert torch.allclose(k, k.flip(0))
    assert torch.allclose(box, torch.full((13,), 1 / 13))
    assert int(gauss.argmax()) == 6 and float(gauss[0]) < float(gauss[6]) / 4


def test_style_dit_condition_input_path_starts_neutral_and_learns(cfg):
    torch.manual_seed(0)
    dit = StyleDiT(cfg.with_updates(style_dit={"cond_input": True}), 64).eval()
    b = random_batch(cfg.vocab, [7, 4], seed=4)
    mask, c_lip = b["unit_mask"], torch.randn(2, 14, 64)
    c_id, c_emo, t = torch.randn(2, 64), torch.randn(2, 14, 64), torch.tensor([0.3, 0.9])
    with_path = dit(b["codes"], t, mask, c_lip, c_id, c_emo)
    path, dit.cond_in = dit.cond_in, None
    torch.testing.assert_close(with_path, dit(b["codes"], t, mask, c_lip, c_id, c_emo))  # zero-initialised
    dit.cond_in = path
    loss, _ = dit.train().loss(b["codes"], mask, c_lip, c_id, c_emo)
    loss.backward()
    assert bool(dit.cond_in.weight.grad.abs().sum() > 0)
