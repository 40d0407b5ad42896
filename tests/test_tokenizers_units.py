"""Unit tokenizer: k-means over 50 Hz features of espeak-ng speech; MFCC, log-mel and a tiny
HuBERT checkpoint we build and save ourselves (no hub weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchaudio
from sample_media import espeak

from imagintalk.config import TokenizerConfig
from imagintalk.errors import ArtifactError, ConfigError, DataError
from imagintalk.tokenizers import UnitTokenizer
from imagintalk.tokenizers.extractors import load_ssl_checkpoint

TEXTS = ("set blue at a one now", "place green by d two soon", "lay red with f three again",
         "bin white in g four please")
TINY = dict(
    extractor_mode="group_norm", extractor_conv_layer_config=[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
    extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
    encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=2, encoder_attention_dropout=0.0,
    encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
    encoder_layer_norm_first=False, encoder_layer_drop=0.0,
)


@pytest.fixture(scope="module")
def audios() -> list[np.ndarray]:
    out = [espeak(t, voice=v) for t, v in zip(TEXTS, ("en-us", "en-us+f2", "en-us+m3", "en-us+f4"), strict=True)]
    return [a[: len(a) // 640 * 640] for a in out]


@pytest.fixture(scope="module")
def mfcc_tok(audios) -> UnitTokenizer:
    return UnitTokenizer.fit(audios, TokenizerConfig(k=16))


def test_encode_gives_two_int16_units_per_video_frame(mfcc_tok, audios):
    for a in audios:
        u = mfcc_tok.encode(a)
        assert u.dtype == np.int16 and u.shape == (len(a) // 640 * 2,)
        assert u.min() >= 0 and u.max() < 16
    assert mfcc_tok.k == 16 and mfcc_tok.meta["features"] == "mfcc"
    assert len(np.unique(np.concatenate([mfcc_tok.encode(a) for a in audios]))) >= 12  # clusters in use


def test_units_separate_speech_from_silence(mfcc_tok, audios):
    a = audios[0]
    silence = np.zeros(25 * 640, np.float32)
    su = mfcc_tok.encode(silence)
    assert len(np.unique(su)) == 1  # all silence frames share one unit
    speech_units = mfcc_tok.encode(a)
    assert np.mean(speech_units != su[0]) > 0.5


def test_same_seed_same_version_and_bytes(audios, tmp_path, mfcc_tok):
    again = UnitTokenizer.fit(audios, TokenizerConfig(k=16))
    assert again.version == mfcc_tok.version and len(mfcc_tok.version) == 64
    a = mfcc_tok.save(tmp_path / "a" / "unit_tokenizer.npz")
    b = again.save(tmp_path / "b" / "unit_tokenizer.npz")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
    other = UnitTokenizer.fit(audios, TokenizerConfig(k=16, seed=1))
    assert other.version != mfcc_tok.version


def test_save_load_round_trip_encodes_identically(mfcc_tok, audios, tmp_path):
    path = mfcc_tok.save(tmp_path / "unit_tokenizer.npz")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["version"] == mfcc_tok.version and meta["k"] == 16
    loaded = UnitTokenizer.load(path)
    assert loaded.version == mfcc_tok.version
    assert np.array_equal(loaded.encode(audios[1]), mfcc_tok.encode(audios[1]))


def test_edited_artifact_is_refused(mfcc_tok, tmp_path):
    path = mfcc_tok.save(tmp_path / "unit_tokenizer.npz")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["k"] = 17
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not match its recorded version"):
        UnitTokenizer.load(path)


def test_max_frames_caps_the_training_set(audios):
    tok = UnitTokenizer.fit(audios, TokenizerConfig(k=8, max_frames=100, features="logmel"))
    assert tok.meta["frames_fit"] == 100 and tok.meta["frames_seen"] > 100
    assert tok.centroids.shape == (8, 80)


def test_more_clusters_than_frames_is_a_config_error(audios):
    with pytest.raises(DataError, match="fewer than the 500 clusters"):
        UnitTokenizer.fit(audios[:1], TokenizerConfig(k=500))


def _save_tiny(path, pretrain: bool = False) -> None:
    torch.manual_seed(0)
    if pretrain:  # HuBERTPretrainModel: the encoder sits under "wav2vec2."
        model = torchaudio.models.hubert_pretrain_model(
            **TINY, mask_prob=0.0, mask_selection="static", mask_other=0.0, mask_length=1, no_mask_overlap=False,
            mask_min_space=1, mask_channel_prob=0.0, mask_channel_selection="static", mask_channel_other=0.0,
            mask_channel_length=1, no_mask_channel_overlap=False, mask_channel_min_space=1, skip_masked=False,
            skip_nomask=False, num_classes=10, final_dim=8, feature_grad_mult=None)
    else:
        model = torchaudio.models.wav2vec2_model(**TINY, aux_num_out=None)
    torch.save({"arch": "hubert", "config": {**TINY, "aux_num_out": None}, "state_dict": model.state_dict()}, path)


@pytest.mark.parametrize("pretrain", [False, True])
def test_hubert_features_from_a_local_checkpoint(tmp_path, audios, pretrain):
    ckpt = tmp_path / "tiny_hubert.pt"
    _save_tiny(ckpt, pretrain)
    tok = UnitTokenizer.fit(audios, TokenizerConfig(k=8, features="hubert", checkpoint=str(ckpt), layer=1))
    assert tok.centroids.shape == (8, 32)
    u = tok.encode(audios[2])
    assert u.shape == (len(audios[2]) // 640 * 2,) and u.dtype == np.int16
    assert len(np.unique(u)) > 1
    # the artifact remembers the checkpoint by content; a different file at that path is refused
    path = tok.save(tmp_path / "unit_tokenizer.npz")
    loaded = UnitTokenizer.load(path)
    assert np.array_equal(loaded.encode(audios[2]), u)
    torch.save({"arch": "hubert", "config": {**TINY, "aux_num_out": None},
                "state_dict": torchaudio.models.wav2vec2_model(**TINY, aux_num_out=None).state_dict()}, ckpt)
    with pytest.raises(ArtifactError, match="differs from the one the tokenizer was fitted with"):
        UnitTokenizer.load(path).encode(audios[2])


def test_bad_checkpoints_are_config_errors(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ArtifactError, match="does not exist"):
        load_ssl_checkpoint(str(missing))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="not a torch checkpoint"):
        load_ssl_checkpoint(str(junk))
    bare = tmp_path / "bare.pt"
    torch.save(torchaudio.models.wav2vec2_model(**TINY, aux_num_out=None).state_dict(), bare)
    with pytest.raises(ArtifactError, match="matches no torchaudio factory"):
        load_ssl_checkpoint(str(bare))
    with pytest.raises(ConfigError, match="need a local checkpoint"):
        UnitTokenizer.fit([np.zeros(6400, np.float32)], TokenizerConfig(k=2, features="hubert"))


@pytest.mark.slow
def test_bare_hubert_base_state_dict_is_recognised(tmp_path):
    """A real-size checkpoint as torchaudio's HUBERT_BASE bundle would give it (random weights)."""
    path = tmp_path / "hubert_base.pt"
    torch.save(torchaudio.models.hubert_base().state_dict(), path)
    model = load_ssl_checkpoint(str(path))
    assert len(model.encoder.transformer.layers) == 12


def test_utterance_normalised_units_ignore_the_channel(audios):
    """CMVN over the utterance removes what is constant over a clip (channel, much of the vocal
    tract): the same speech through a tilting filter keeps far more of its units than without it."""
    a = audios[1]
    tilted = np.append(a[:1], a[1:] - 0.9 * a[:-1]).astype(np.float32)  # a constant spectral tilt
    agree = {}
    for mode in ("utterance", "none"):
        tok = UnitTokenizer.fit(audios, TokenizerConfig(k=16, normalize=mode))
        agree[mode] = float(np.mean(tok.encode(a) == tok.encode(tilted)))
        assert tok.meta["normalize"] == mode
    assert agree["utterance"] >= 0.99 and agree["utterance"] > agree["none"], agree
