"""Inference: generate (batched, deterministic), guidance, save/load, codecs, Griffin-Lim, sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagintalk.config import Params
from imagintalk.errors import ConfigError
from imagintalk.features.audio import log_mel
from imagintalk.models.batch import random_batch
from imagintalk.models.codec_decoder import CodecDecoder, ResidualCodebookDecoder
from imagintalk.models.config import PRESETS, model_config
from imagintalk.models.imagintalk import ImaginTalk, count_parameters
from imagintalk.models.style_dit import StyleDiT
from imagintalk.models.vocoder import GriffinLimVocoder, LogMel
from imagintalk.tokenizers.codec import KIND as CODEC_KIND
from imagintalk.tokenizers.codec import ResidualCodec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return ImaginTalk(cfg, ResidualCodebookDecoder.random(cfg.vocab, seed=1))


@pytest.fixture(scope="module")
def batch(cfg):
    return random_batch(cfg.vocab, [10, 7], seed=20)


class UnsavableCodec:
    """Decodes (numpy in, numpy out) but cannot be persisted."""

    def __init__(self, books: np.ndarray):
        self.books = books

    def decode(self, codes: np.ndarray) -> np.ndarray:
        frames = self.books[np.arange(codes.shape[0])[:, None], codes].sum(axis=0)  # 2T×80
        return np.repeat(frames, 2, axis=0).T.astype(np.float32)


def test_generate_returns_batched_waveforms_with_per_clip_lengths(model, batch):
    out = model.generate_batch(batch, steps=4, seed=0)
    assert out.waveforms.shape == (2, 10 * 640) and out.waveforms.dtype == torch.float32
    assert out.lengths.tolist() == [10 * 640, 7 * 640] and out.sample_rate == 16000
    assert out.codes.shape == (2, 8, 20) and out.mel.shape == (2, 80, 40) and out.units.shape == (2, 20)
    assert torch.isfinite(out.waveforms).all() and float(out.waveforms[0].abs().max()) > 0
    assert torch.all(out.waveforms[1, 7 * 640:] == 0) and torch.all(out.codes[1, :, 14:] == 0)
    assert int(out.codes.max()) < 256  # no [MASK] token left after the last step


def test_generate_is_deterministic_for_a_seed_and_varies_across_seeds(model, batch):
    a = model.generate_batch(batch, steps=4, seed=7)
    b = model.generate_batch(batch, steps=4, seed=7)
    c = model.generate_batch(batch, steps=4, seed=8)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.waveforms, b.waveforms)
    assert not torch.equal(a.codes, c.codes)


def test_a_clip_speaks_the_same_alone_or_batched_with_a_longer_clip(model, batch):
    """Batched serving: each clip draws from its own seeded generator over its own tokens and
    every part ignores padding, so its codes and audio do not depend on its batch-mates."""
    short = {k: (v[1:2] if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    short = {k: (v[:, :7] if isinstance(v, torch.Tensor) and k in ("lips", "lip_mask", "landmarks", "face_found")
                 else v) for k, v in short.items()}
    for temperature in (0.0, 1.0):
        together = model.generate_batch(batch, steps=4, seed=3, temperature=temperature)
        alone = model.generate_batch(short, steps=4, seed=3, temperature=temperature)
        assert torch.equal(together.codes[1, :, :14], alone.codes[0, :, :14])
        torch.testing.assert_close(together.waveforms[1, : 7 * 640], alone.waveforms[0], atol=1e-5, rtol=1e-4)


def test_cfg_with_every_condition_dropped_still_generates(model, batch):
    out = model.generate_batch(batch, steps=3, seed=0, drop=("lip", "id", "emo"),
                               guidance={"lip": 2.0, "id": 1.5, "emo": 1.0})
    assert out.waveforms.shape == (2, 6400) and torch.isfinite(out.waveforms).all()
    codes = model.dit.sample(batch["unit_mask"], steps=2, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (2, 8, 20) and int(codes.max()) < 256
    with pytest.raises(ValueError, match="unknown condition"):
        model.generate_batch(batch, steps=2, drop=("voice",))
    with pytest.raises(ValueError, match="unknown guidance"):
        model.generate_batch(batch, steps=2, guidance={"pitch": 1.0})


def test_guidance_combines_one_pass_per_dropped_condition_with_separate_weights(cfg):
    torch.manual_seed(0)
    dit = StyleDiT(cfg, 32).eval()
    b, n = 2, 6
    mask = torch.ones(b, n, dtype=torch.bool)
    codes = torch.randint(0, 257, (b, 8, n))
    t = torch.tensor([0.5, 0.8])
    c_lip, c_id, c_emo = torch.randn(b, n, 32), torch.randn(b, 64), torch.randn(b, n, 64)
    conds = {"lip": c_lip, "id": c_id, "emo": c_emo}
    keep = {k: torch.ones(b, dtype=torch.bool) for k in conds}
    weights = {"lip": 2.0, "id": 0.5, "emo": 1.25}
    with torch.no_grad():
        got = dit._guided_logp(codes, t, mask, conds, keep, weights)

        def lp(**drop):
            flags = {k: torch.full((b,), not drop.get(k, False)) for k in conds}
            return torch.log_softmax(dit(codes, t, mask, c_lip, c_id, c_emo, flags["lip"], flags["id"],
                                         flags["emo"]), dim=-1)

        full = lp()
        expect = full + 2.0 * (full - lp(lip=True)) + 0.5 * (full - lp(id=True)) + 1.25 * (full - lp(emo=True))
    torch.testing.assert_close(got, torch.log_softmax(expect, dim=-1), atol=1e-4, rtol=1e-4)


def test_sampler_unmasks_everything_within_the_given_steps(cfg):
    torch.manual_seed(0)
    dit = StyleDiT(cfg, 32).eval()
    mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    for steps in (1, 3, 8):
        codes = dit.sample(mask, c_lip=torch.randn(2, 8, 32), steps=steps, temperature=0.0)
        assert int(codes.max()) < 256 and torch.all(codes[0, :, 5:] == 0)


def test_save_load_round_trip_gives_identical_outputs(model, batch, tmp_path):
    before = model.generate_batch(batch, steps=4, seed=3, guidance={"lip": 1.0})
    model.save(tmp_path / "m")
    loaded = ImaginTalk.load(tmp_path / "m")
    after = loaded.generate_batch(batch, steps=4, seed=3, guidance={"lip": 1.0})
    assert torch.equal(before.codes, after.codes) and torch.equal(before.waveforms, after.waveforms)
    assert loaded.cfg == model.cfg
    with pytest.raises(ConfigError, match="not an ImaginTalk model directory"):
        ImaginTalk.load(tmp_path)


def test_weights_that_do_not_match_the_saved_config_are_one_line_naming_the_part(model, tmp_path):
    """A model saved before a default changed (here: the vocoder's width) must not load as a torch
    traceback of every mismatched key: one line, the part's file, the first mismatch, what to do."""
    import json

    from imagintalk.errors import ArtifactError

    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m/imagintalk.json").read_text())
    meta["model"]["vocoder"]["dim"] *= 2
    (tmp_path / "m/imagintalk.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError) as err:
        ImaginTalk.load(tmp_path / "m")
    msg = str(err.value)
    assert "\n" not in msg and "vocoder.pt" in msg and "older ImaginTalk" in msg
    assert "size mismatch" in msg or "Missing key" in msg


def test_a_model_saved_before_id_source_existed_loads_as_the_face_path(cfg, batch, tmp_path):
    """``face_style.id_source`` defaults to ``voice`` now; a model saved before the field existed
    had only the face path and must load as such, with the same output."""
    import json

    torch.manual_seed(0)
    old = ImaginTalk(cfg.with_updates(face_style={"id_source": "face"}),
                     ResidualCodebookDecoder.random(cfg.vocab, seed=1))
    old.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m/imagintalk.json").read_text())
    del meta["model"]["face_style"]["id_source"]
    (tmp_path / "m/imagintalk.json").write_text(json.dumps(meta))
    loaded = ImaginTalk.load(tmp_path / "m")
    assert loaded.cfg.face_style.id_source == "face"
    a = old.generate_batch(batch, steps=2, seed=0)
    b = loaded.generate_batch(batch, steps=2, seed=0)
    assert torch.equal(a.codes, b.codes)


def test_the_data_sides_residual_codec_plugs_in_and_round_trips(cfg, batch, tmp_path):
    books = ResidualCodebookDecoder.random(cfg.vocab, seed=1).codebooks.numpy()
    codec = ResidualCodec(books, {"kind": CODEC_KIND, "levels": 8, "codebook_size": 256})
    assert isinstance(codec, CodecDecoder)
    torch.manual_seed(0)
    data_model = ImaginTalk(cfg, codec)
    torch.manual_seed(0)
    torch_model = ImaginTalk(cfg, ResidualCodebookDecoder(torch.from_numpy(books)))
    a = data_model.generate_batch(batch, steps=2, seed=0)
    b = torch_model.generate_batch(batch, steps=2, seed=0)
    torch.testing.assert_close(a.mel, b.mel)  # same rule: numpy per clip vs batched torch
    data_model.save(tmp_path / "m")
    loaded = ImaginTalk.load(tmp_path / "m")
    assert isinstance(loaded.codec, ResidualCodec)
    assert torch.equal(loaded.generate_batch(batch, steps=2, seed=0).waveforms, a.waveforms)

    with pytest.raises(TypeError, match="cannot be saved"):
        ImaginTalk(cfg, UnsavableCodec(books)).save(tmp_path / "np")
    with pytest.raises(TypeError, match="no decode"):
        ImaginTalk(cfg, object())


def test_vocoder_log_mel_is_the_data_sides_log_mel(cfg):
    audio = random_batch(cfg.vocab, [13], seed=22)["audio"][0]
    ours = LogMel(cfg.vocab)(audio)
    theirs = log_mel(audio.numpy(), Params().audio)
    assert ours.shape == (80, 13 * 4) == theirs.shape
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_griffin_lim_fallback_inverts_a_log_mel(cfg):
    gl_cfg = cfg.with_updates(vocoder={"kind": "griffin_lim", "griffin_lim_iters": 32})
    audio = random_batch(cfg.vocab, [25], seed=21)["audio"]  # 1 s of a harmonic, drifting pitch
    to_mel = LogMel(cfg.vocab)
    mel = to_mel(audio)
    wave, lengths = GriffinLimVocoder(gl_cfg)(mel)
    assert wave.shape == (1, 16000) and lengths.tolist() == [16000]
    again = to_mel(wave)
    voiced = mel > np.log(1e-3)
    corr = np.corrcoef(mel[voiced].numpy(), again[voiced].numpy())[0, 1]
    assert corr > 0.9, corr


def test_griffin_lim_model_needs_no_vocoder_weights(cfg, batch, tmp_path):
    gl_cfg = cfg.with_updates(vocoder={"kind": "griffin_lim", "griffin_lim_iters": 4})
    torch.manual_seed(0)
    model = ImaginTalk(gl_cfg, ResidualCodebookDecoder.random(cfg.vocab))
    out = model.generate_batch(batch, steps=2, seed=0)
    assert out.lengths.tolist() == [6400, 4480] and torch.isfinite(out.waveforms).all()
    model.save(tmp_path / "gl")
    assert not (tmp_path / "gl" / "vocoder.pt").exists()
    again = ImaginTalk.load(tmp_path / "gl").generate_batch(batch, steps=2, seed=0)
    assert torch.equal(out.waveforms, again.waveforms)


def test_parameter_counts_grow_from_tiny_to_base_to_paper():
    counts = {p: count_parameters(model_config(p, Params())) for p in PRESETS}
    for preset, c in counts.items():
        print(f"{preset:>5}: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in c.items()))
    tiny, base, paper = (counts[p]["total"] for p in PRESETS)
    assert 3e5 < tiny < 5e6
    assert 2e7 < base < 1.5e8
    assert 2e8 < paper < 1e9
    assert paper > 3 * base > 30 * tiny
    assert counts["paper"]["style_dit"] > 5e7  # C=768, 12 heads, 8 DiT blocks
