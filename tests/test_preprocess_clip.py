"""preprocess_clip on real H.264/AAC clips: every output at its documented shape, and each bad
input refused with a typed one-line error naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from sample_media import write_talking_clip

from imagintalk.config import Params
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.errors import AudioQualityError, FaceError, MediaError
from imagintalk.media import write_audio, write_mp4
from imagintalk.preprocess import preprocess_clip

PARAMS = Params()
N = 40  # frames: 1.6 s


def _row(video, audio=None, emotion="happy", intensity=0.5) -> ManifestRow:
    return ManifestRow(
        clip_id="synthtalk/s1/c1", corpus="synthtalk", speaker="s1", split="train", video_path=str(video),
        audio_path=str(audio) if audio else None, transcript="set blue at a one now", emotion=emotion,
        intensity=intensity, duration_s=N / 25, fps=25.0, sample_rate=16000, sha256="0" * 64)


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    return write_talking_clip(tmp_path_factory.mktemp("clip") / "a.mp4", "astronaut", n_frames=N, seed=4)


@pytest.fixture(scope="module")
def features(talking):
    return preprocess_clip(_row(talking.path), PARAMS)


def test_clip_features_have_the_record_shapes_and_dtypes(features):
    f = features
    assert f.lips.shape == (N, 96, 96) and f.lips.dtype == np.uint8
    assert f.face.shape == (150, 150, 3) and f.face.dtype == np.uint8
    assert f.identity.shape == (128,) and f.identity.dtype == np.float32
    assert np.linalg.norm(f.identity) == pytest.approx(1.0, abs=1e-5)
    assert f.mouth_open.shape == (N,) and f.mouth_open.dtype == np.float32
    assert f.audio.shape == (N * 640,) and f.audio.dtype == np.float32
    assert f.mel.shape == (80, 4 * N) and f.mel.dtype == np.float16
    assert np.isfinite(f.mel.astype(np.float32)).all()
    assert f.fps == 25 and f.face_ratio >= 0.95 and abs(f.av_mismatch_s) <= 0.04
    assert f.emotion == {"label": "happy", "intensity": 0.5, "probs": None}


def test_quality_stats_describe_the_clip(features, talking):
    s = features.stats
    for key in ("face_ratio", "lip_sharpness", "lip_brightness", "audio_rms", "clipping_ratio",
                "silence_ratio", "av_mismatch_s", "n_frames", "duration_s"):
        assert isinstance(s[key], float), key
    assert s["n_frames"] == N and s["duration_s"] == pytest.approx(N / 25)
    assert s["audio_rms"] == pytest.approx(float(np.sqrt(np.mean(talking.audio ** 2))), rel=0.2)
    assert s["clipping_ratio"] == 0.0
    assert 0.0 < s["silence_ratio"] < 1.0  # speech, then the padding after it
    assert s["lip_sharpness"] > 1.0 and 20 < s["lip_brightness"] < 235


def test_mouth_opening_follows_the_speech(features, talking):
    assert np.corrcoef(features.mouth_open, talking.openings)[0, 1] > 0.7


def test_audio_kept_in_a_separate_file_is_used(tmp_path, talking):
    """GRID/MEAD keep the audio apart from the video: audio_path wins over the video's own track."""
    video = write_mp4(tmp_path / "v.mp4", talking.frames, 25)  # no audio track at all
    wav = write_audio(tmp_path / "a.wav", talking.audio)
    f = preprocess_clip(_row(video, wav), PARAMS)
    assert f.audio.shape == (N * 640,)
    assert np.corrcoef(f.audio, talking.audio)[0, 1] > 0.99


def test_noise_video_is_refused_with_a_face_error(tmp_path, talking):
    noise = np.random.default_rng(0).integers(0, 255, (N, 96, 96, 3), dtype=np.uint8)
    path = write_mp4(tmp_path / "noise.mp4", noise, 25, talking.audio)
    with pytest.raises(FaceError) as err:
        preprocess_clip(_row(path), PARAMS)
    assert str(err.value) == f"{path}: no face found"


def test_face_lost_on_most_frames_is_refused(tmp_path, talking):
    frames = talking.frames.copy()
    frames[N // 2:] = np.random.default_rng(1).integers(0, 255, frames[N // 2:].shape, dtype=np.uint8)
    path = write_mp4(tmp_path / "half.mp4", frames, 25, talking.audio)
    with pytest.raises(FaceError, match=r"face found on 5\d% of frames"):
        preprocess_clip(_row(path), PARAMS)


def test_silent_audio_is_refused(tmp_path, talking):
    path = write_mp4(tmp_path / "silent.mp4", talking.frames, 25, np.zeros(N * 640, np.float32))
    with pytest.raises(AudioQualityError, match="silent audio"):
        preprocess_clip(_row(path), PARAMS)


def test_audio_much_longer_than_the_video_is_refused(tmp_path, talking):
    video = write_mp4(tmp_path / "v.mp4", talking.frames, 25)
    wav = write_audio(tmp_path / "long.wav", np.tile(talking.audio, 2))
    with pytest.raises(AudioQualityError, match="length mismatch") as err:
        preprocess_clip(_row(video, wav), PARAMS)
    assert str(wav) in str(err.value)


def test_small_mismatch_is_trimmed(tmp_path, talking):
    video = write_mp4(tmp_path / "v.mp4", talking.frames, 25)
    wav = write_audio(tmp_path / "a.wav", np.concatenate([talking.audio, talking.audio[:300]]))
    f = preprocess_clip(_row(video, wav), PARAMS)
    assert f.audio.shape == (N * 640,) and f.av_mismatch_s == pytest.approx(300 / 16000)


def test_truncated_file_is_a_media_error(tmp_path, talking):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(talking.path.read_bytes()[:2000])
    with pytest.raises(MediaError) as err:
        preprocess_clip(_row(bad), PARAMS)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
