"""Offline judges on real espeak-ng speech: each metric moves the right way on a good vs bad pair."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from imagintalk.eval import metrics as M
from imagintalk.eval.asr import GRID_SLOTS, grid_asr, jsgf_for_slots
from imagintalk.eval.emotion_judge import EmotionJudge
from imagintalk.media import read_audio


def _say(tmp_path, text, voice="en-us+m3", pitch=50, speed=160, name="x"):
    p = tmp_path / f"{name}.wav"
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(p), text]
    subprocess.run(cmd, check=True)
    return read_audio(p, 16000)


def test_grid_grammar_asr_recognises_espeak_speech(tmp_path):
    text = "set blue at a one now"
    hyp = grid_asr().transcribe(_say(tmp_path, text))
    assert M.word_error_rate([text], [hyp]) <= 1 / 6
    noise = np.random.default_rng(0).normal(0, 0.05, 32000).astype(np.float32)
    assert M.word_error_rate([text], [grid_asr().transcribe(noise)]) >= 0.5
    assert "<letter> = a | b" in jsgf_for_slots(GRID_SLOTS) and " w " not in jsgf_for_slots(GRID_SLOTS)


def test_quality_and_identity_metrics_prefer_the_same_speech(tmp_path):
    ref = _say(tmp_path, "place green by c two please", name="r")
    same = ref + np.random.default_rng(1).normal(0, 1e-3, len(ref)).astype(np.float32)
    other = _say(tmp_path, "place green by c two please", voice="en-us+f4", pitch=80, name="o")
    assert M.mel_cepstral_distortion(ref, same) < M.mel_cepstral_distortion(ref, other)
    s_same, e_same = M.stoi_scores(ref, same)
    s_other, e_other = M.stoi_scores(ref, other)
    assert s_same > 0.9 and s_same > s_other and e_same > e_other
    assert M.speaker_similarity(ref, same) > M.speaker_similarity(ref, other)
    rmse_same, corr_same = M.f0_metrics(ref, same)
    rmse_other, _ = M.f0_metrics(ref, other)
    assert rmse_same < rmse_other and corr_same > 0.9


def test_unit_error_rate_counts_edits():
    ref = np.array([1, 2, 3, 4])
    assert M.unit_error_rate(ref, ref) == 0.0
    assert M.unit_error_rate(ref, np.array([1, 9, 3, 4])) == pytest.approx(0.25)


def test_sync_finds_a_known_offset():
    rng = np.random.default_rng(0)
    mouth = np.abs(np.convolve(rng.normal(size=100), np.ones(3) / 3, mode="same"))
    env = np.repeat(np.roll(mouth, 2), 640)  # audio lags the video by 2 frames
    audio = (env * rng.normal(size=len(env))).astype(np.float32)
    offset, conf = M.av_sync(mouth, audio)
    assert offset == 2 and conf > 0.3


def test_emotion_judge_separates_prosody(tmp_path):
    words = ["set blue at a one now", "bin red by b two soon", "lay white in c three again",
             "place green with d four please"]
    audios, labels = [], []
    for i, w in enumerate(words * 2):
        audios.append(_say(tmp_path, w, pitch=75, speed=200, name=f"h{i}"))
        labels.append("happy")
        audios.append(_say(tmp_path, w, pitch=25, speed=120, name=f"s{i}"))
        labels.append("sad")
    judge = EmotionJudge.fit(audios[:12], labels[:12])
    assert judge.accuracy(audios[12:], labels[12:]) == 1.0


def test_dnsmos_prefers_clean_speech_to_noise(tmp_path):
    speech = _say(tmp_path, "bin red by b two soon")
    p808, ovrl = M.dnsmos(speech)
    noise = np.random.default_rng(0).normal(0, 0.1, len(speech)).astype(np.float32)
    n808, novrl = M.dnsmos(noise)
    assert 2.5 < p808 <= 5 and p808 > n808 + 0.5 and ovrl > novrl
    assert all(np.isnan(M.dnsmos(np.zeros(16000, np.float32))))  # silence: no score, not a crash
