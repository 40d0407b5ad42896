"""Log-mel / MFCC framing on the video clock and Griffin-Lim resynthesis, on espeak-ng speech."""

from __future__ import annotations

import numpy as np
import pytest
from sample_media import espeak

from imagintalk.config import AudioFeatureConfig
from imagintalk.features.audio import frames_50hz, griffin_lim, log_mel, mfcc, upsample_100hz
from imagintalk.media import write_audio

CFG = AudioFeatureConfig()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    a = espeak("bin blue at f two now")
    return a[: len(a) // 640 * 640]


@pytest.mark.parametrize("t", [1, 7, 25, 75])
def test_log_mel_has_four_frames_per_video_frame(t):
    audio = np.random.default_rng(t).normal(0, 0.1, t * 640).astype(np.float32)
    m = log_mel(audio, CFG)
    assert m.shape == (80, 4 * t) and m.dtype == np.float32
    assert mfcc(audio, CFG).shape == (13, 4 * t)
    assert frames_50hz(m).shape == (80, 2 * t)
    assert upsample_100hz(frames_50hz(m)).shape == (80, 4 * t)


def test_mel_frames_are_centred_on_their_own_hop():
    """A click in hop i lights up frame i most: no half-frame offset between mel and video."""
    audio = np.zeros(25 * 640, np.float32)
    for i in (10, 37, 80):
        audio[i * 160 + 80] = 1.0
        energy = log_mel(audio, CFG).mean(0)
        assert int(np.argmax(energy)) == i
        audio[i * 160 + 80] = 0.0


def test_log_mel_follows_loudness_and_spectrum(speech):
    m = log_mel(speech, CFG)
    # a 1 kHz tone puts its energy in the matching mel band, not elsewhere
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype(np.float32)
    tm = log_mel(tone, CFG).mean(1)
    assert 20 < int(np.argmax(tm)) < 40
    # speech is louder where espeak speaks than in the trailing pad
    loud = m.mean(0)
    assert loud.max() - loud.min() > 5.0


def test_frames_50hz_average_pairs():
    feat = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert np.array_equal(frames_50hz(feat), np.array([[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]], np.float32))


def test_griffin_lim_gives_listenable_audio_with_the_same_envelope(speech, tmp_path):
    m = log_mel(speech, CFG)
    y = griffin_lim(m, CFG)
    assert y.shape == speech.shape and y.dtype == np.float32 and np.abs(y).max() <= 1.0
    back = log_mel(y, CFG)
    assert np.corrcoef(m.mean(0), back.mean(0))[0, 1] > 0.95
    assert np.corrcoef(m.ravel(), back.ravel())[0, 1] > 0.9
    path = write_audio(tmp_path / "gl.wav", y)
    assert path.stat().st_size > len(y)  # 16-bit PCM wav
    # deterministic: the same mel gives the same waveform
    assert np.array_equal(griffin_lim(m, CFG), y)


def test_stack_pairs_keeps_both_frames_and_unstacks_exactly():
    from imagintalk.features.audio import stack_pairs, unstack_pairs

    feat = np.arange(2 * 7, dtype=np.float32).reshape(2, 7)
    stacked = stack_pairs(feat)
    assert stacked.shape == (4, 3)
    np.testing.assert_array_equal(stacked[:, 0], [0, 7, 1, 8])  # [frame 0; frame 1]
    np.testing.assert_array_equal(unstack_pairs(stacked), feat[:, :6])
