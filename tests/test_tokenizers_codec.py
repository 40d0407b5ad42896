"""Residual k-means codec over 50 Hz log-mel of espeak-ng speech: shapes, determinism, error per
level, and codes -> mel -> Griffin-Lim -> a wav a person can listen to."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from sample_media import espeak

from imagintalk.config import AudioFeatureConfig, CodecConfig
from imagintalk.errors import DataError
from imagintalk.features.audio import griffin_lim, log_mel
from imagintalk.media import write_audio
from imagintalk.tokenizers import ResidualCodec

ACFG = AudioFeatureConfig()
CFG = CodecConfig(levels=4, codebook_size=32)


@pytest.fixture(scope="module")
def mels() -> list[np.ndarray]:
    texts = [("set blue at a one now", "en-us"), ("place green by d two soon", "en-us+f2"),
             ("lay red with f three again", "en-us+m3"), ("bin white in g four please", "en-us+f4")]
    out = []
    for text, voice in texts:
        a = espeak(text, voice=voice)
        out.append(log_mel(a[: len(a) // 640 * 640], ACFG))
    return out


@pytest.fixture(scope="module")
def codec(mels) -> ResidualCodec:
    return ResidualCodec.fit(mels, CFG)


def test_encode_decode_shapes(codec, mels):
    m = mels[0]
    codes = codec.encode(m)
    assert codes.shape == (4, m.shape[1] // 2) and codes.dtype == np.int16
    assert codes.min() >= 0 and codes.max() < 32
    rec = codec.decode(codes)
    assert rec.shape == m.shape and rec.dtype == np.float32
    # float16 mels straight from the shards encode the same (to float16 rounding)
    assert np.mean(codec.encode(m.astype(np.float16)) == codes) > 0.95


def test_error_decreases_with_every_level(codec, mels):
    report = codec.reconstruction_report(mels)
    assert list(report) == [1, 2, 3, 4]
    errs = list(report.values())
    assert all(b < a for a, b in zip(errs, errs[1:], strict=False))
    train = codec.meta["train_mse_per_level"]
    assert all(b < a for a, b in zip(train, train[1:], strict=False))
    assert errs[0] < float(np.mean([m.var() for m in mels]))  # better than the mean frame


def test_more_levels_fit_better_on_held_out_speech(mels):
    codec = ResidualCodec.fit(mels[:3], CodecConfig(levels=3, codebook_size=16))
    held_out = codec.reconstruction_report(mels[3:])
    assert held_out[3] < held_out[1]


def test_same_seed_same_version_and_bytes(codec, mels, tmp_path):
    again = ResidualCodec.fit(mels, CFG)
    assert again.version == codec.version
    a = codec.save(tmp_path / "a" / "codec.npz")
    b = again.save(tmp_path / "b" / "codec.npz")
    assert a.read_bytes() == b.read_bytes()
    loaded = ResidualCodec.load(a)
    assert loaded.version == codec.version and loaded.levels == 4 and loaded.codebook_size == 32
    assert np.array_equal(loaded.encode(mels[1]), codec.encode(mels[1]))
    assert ResidualCodec.fit(mels, CodecConfig(levels=4, codebook_size=32, seed=3)).version != codec.version


def test_decoded_codes_resynthesise_to_listenable_speech(codec, mels, tmp_path):
    m = mels[1]
    rec = codec.decode(codec.encode(m))
    y = griffin_lim(rec, ACFG)
    path = write_audio(tmp_path / "codec.wav", y)
    wav, sr = sf.read(str(path), dtype="float32")
    assert sr == 16000 and len(wav) == m.shape[1] * 160
    back = log_mel(wav, ACFG)
    # the loudness contour (syllables) survives coding and resynthesis
    assert np.corrcoef(m.mean(0), back.mean(0))[0, 1] > 0.9
    assert np.corrcoef(m.ravel(), back.ravel())[0, 1] > 0.8


def test_fewer_levels_decode_from_a_prefix(codec, mels):
    codes = codec.encode(mels[2])
    assert np.array_equal(codec.decode(codes, 2), codec.decode(codes[:2]))


def test_levels_beyond_twelve_are_refused():
    with pytest.raises(ValueError):
        CodecConfig(levels=13)
    with pytest.raises(DataError, match="fewer than the 4096 clusters"):
        ResidualCodec.fit([np.zeros((80, 40), np.float32)], CodecConfig(levels=1, codebook_size=4096))


def test_each_token_decodes_to_two_distinct_mel_frames(codec, mels):
    """A token holds both of its 100 Hz frames (stacked), not their mean repeated twice: the
    decoded mel keeps the within-pair change (the 50 -> 100 Hz duplication of the first codec)."""
    m = mels[1]
    rec = codec.decode(codec.encode(m))
    even, odd = rec[:, 0::2], rec[:, 1::2]
    assert np.abs(even - odd).mean() > 0.05
    assert codec.codebooks.shape[2] == 2 * m.shape[0] and codec.meta["mels_per_token"] == 2


def test_torch_decoder_of_the_codec_decodes_exactly_as_the_codec(codec, mels):

    from imagintalk.models.codec_decoder import ResidualCodebookDecoder

    codes = codec.encode(mels[2])
    torch_mel = ResidualCodebookDecoder.from_codec(codec).decode(codes).numpy()
    np.testing.assert_allclose(torch_mel, codec.decode(codes), atol=1e-4)
