"""What SynthTalk must carry in the picture and the sound: distinct people, lips that follow the
phonemes, emotions that change the prosody. Measured with the production detector and dlib's
descriptor, not with the generator's own ground truth."""

from __future__ import annotations

import functools
import itertools

import librosa
import numpy as np
import pytest

from imagintalk.config import Params, SynthConfig
from imagintalk.media import read_clip
from imagintalk.preprocess.detector import DlibFaceDetector, face_recognition_models
from imagintalk.synth.clip import generate_clip
from imagintalk.synth.espeak import EspeakVoice
from imagintalk.synth.grammar import Sentence
from imagintalk.synth.identity import build_identity, identity_recipe
from imagintalk.synth.plan import plan_corpus, speaker_voice
from imagintalk.synth.visemes import mouth_track
from imagintalk.synth.voice import speak

SENTENCE = Sentence(("bin", "blue", "by", "a", "five", "please"))  # bilabials and open vowels


@pytest.fixture(scope="module")
def detector() -> DlibFaceDetector:
    return DlibFaceDetector(upsample=0)


@pytest.fixture(scope="module")
def encoder():
    import dlib

    return dlib.face_recognition_model_v1(face_recognition_models().face_recognition_model_location())


@functools.cache
def _predictor():
    import dlib

    return dlib.shape_predictor(face_recognition_models().pose_predictor_model_location())


def descriptor(encoder, detector, image) -> np.ndarray:
    import dlib

    box = detector.detect(image)[0]
    shape = _predictor()(image, dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom)))
    return np.array(encoder.compute_face_descriptor(image, shape))


def test_speakers_are_farther_apart_than_frames_of_one_speaker(tmp_path, detector, encoder):
    params = Params()
    plan = [c for c in plan_corpus(3, 1, 0, params.synth)]
    per_speaker = []
    for spec in plan:
        result = generate_clip(spec, tmp_path, params.synth, params.media)
        frames = read_clip(result.video_path).frames
        picks = np.linspace(0, len(frames) - 1, 4).astype(int)
        per_speaker.append([descriptor(encoder, detector, frames[i]) for i in picks])
    within = max(np.linalg.norm(a - b) for d in per_speaker for a, b in itertools.combinations(d, 2))
    between = min(np.linalg.norm(a - b) for d1, d2 in itertools.combinations(per_speaker, 2)
                  for a in d1 for b in d2)
    assert within < between, (within, between)


@pytest.mark.slow
def test_twelve_identities_are_pairwise_distinct(detector, encoder):
    cfg = SynthConfig()
    faces = [build_identity(identity_recipe(k), cfg.size, cfg.face_box_fraction).image for k in range(12)]
    d = [descriptor(encoder, detector, f) for f in faces]
    dist = [np.linalg.norm(a - b) for a, b in itertools.combinations(d, 2)]
    assert min(dist) > 0.2, sorted(dist)[:5]


def test_mouth_opens_on_vowels_and_closes_on_bilabials(tmp_path, detector):
    params = Params()
    spec = plan_corpus(1, 1, 0, params.synth)[0]
    result = generate_clip(spec, tmp_path, params.synth, params.media, sentence=SENTENCE)
    frames = read_clip(result.video_path).frames
    track = result.track
    open_frames = np.flatnonzero(track.open > 0.6)
    closed_frames = np.flatnonzero(track.closed)
    assert len(open_frames) >= 3 and len(closed_frames) >= 2

    def lip_gap(i: int) -> float:
        """Inner-lip gap over the inter-ocular distance, from the production landmarks."""
        lm = detector.landmarks(frames[i], detector.detect(frames[i])[0])
        iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
        return float(np.linalg.norm(lm[66] - lm[62]) / iod)

    def dark_share(i: int) -> float:
        """Share of dark pixels around the mouth: the painted cavity shows when the lips part."""
        lm = detector.landmarks(frames[i], detector.detect(frames[i])[0])
        x0, y0 = lm[48:68].min(0).astype(int)
        x1, y1 = lm[48:68].max(0).astype(int)
        roi = frames[i, y0:y1 + 1, x0:x1 + 1].astype(np.float32).mean(-1)
        return float((roi < 70).mean())

    assert np.mean([lip_gap(i) for i in open_frames]) > np.mean([lip_gap(i) for i in closed_frames]) + 0.05
    assert np.mean([dark_share(i) for i in open_frames]) > np.mean([dark_share(i) for i in closed_frames]) + 0.1


def test_visemes_close_for_bilabials_and_follow_the_phoneme_timing():
    voice = speaker_voice(0)
    speech = speak(SENTENCE, voice, "neutral", 0.0, 16000)
    track = mouth_track(speech.phones, 0.0, int(np.ceil(speech.audio.size / 640)), 25, 0.03)
    b_phone = next(p for p in speech.phones if p.label == "b")
    frame = int((b_phone.start + b_phone.end) / 2 * 25)
    assert track.closed[frame] and track.open[frame] == 0.0
    assert [w.label for w in speech.words] == list(SENTENCE.words)
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(speech.words))
    assert speech.words[-1].end <= speech.audio.size / 16000 + 1e-3


def f0_and_energy(audio: np.ndarray) -> tuple[float, float, float]:
    f0 = librosa.yin(audio, fmin=60, fmax=500, sr=16000, frame_length=800, hop_length=160)
    rms = librosa.feature.rms(y=audio, frame_length=800, hop_length=160)[0][: len(f0)]
    voiced = rms > 0.25 * rms.max()
    return float(np.median(f0[voiced])), float(rms[voiced].mean()), audio.size / 16000


@pytest.mark.parametrize("voice", [EspeakVoice("en-us+m3", 45, 140), EspeakVoice("en-us+f2", 55, 150)])
def test_emotions_change_pitch_rate_and_loudness(voice):
    m = {e: f0_and_energy(speak(SENTENCE, voice, e, 1.0, 16000).audio)
         for e in ("neutral", "happy", "sad", "angry", "surprised")}
    assert m["happy"][0] > 1.1 * m["sad"][0]               # pitch level
    assert m["surprised"][0] > m["neutral"][0] > m["sad"][0]
    assert m["sad"][2] > 1.15 * m["happy"][2]              # slower
    assert m["angry"][2] < m["neutral"][2]                 # faster
    assert m["angry"][1] > 1.3 * m["sad"][1]               # louder
    assert all(np.abs(speak(SENTENCE, voice, e, 1.0, 16000).audio).max() < 1.0 for e in m)


def test_espeak_speech_is_repeatable_within_one_process():
    voice = speaker_voice(3)
    a = speak(SENTENCE, voice, "happy", 0.75, 16000)
    speak(Sentence(("lay", "red", "at", "z", "nine", "soon")), voice, "sad", 1.0, 16000)
    b = speak(SENTENCE, voice, "happy", 0.75, 16000)
    assert np.array_equal(a.audio, b.audio) and a.phones == b.phones
