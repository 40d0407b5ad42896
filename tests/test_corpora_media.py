"""Builders of tiny real media in each corpus's own formats (mp4, MPEG-1 .mpg, FLV, wav, m4a),
shared by the corpus tests, and the tests of the ingest-time media checks on those formats."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from imagintalk.corpora.checks import inspect_media, sha256_files
from imagintalk.errors import MediaError
from imagintalk.media import read_video, write_audio, write_mp4

N_FRAMES, SIZE, FPS = 8, 32, 25
CLIP_S = N_FRAMES / FPS   # 0.32 s


def _frames(n: int = N_FRAMES, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def make_mp4(path: Path, n: int = N_FRAMES, audio: bool = True, seed: int = 0, faststart: bool = False) -> Path:
    """H.264 (+ AAC) like LRS2/LRS3/VoxCeleb2/MEAD/RAVDESS/SynthTalk clips."""
    if not faststart:
        return write_mp4(path, _frames(n, seed), FPS, _tone(n / FPS, 16000) if audio else None)
    return _encode(path, "mp4", "libx264", n, seed, {"movflags": "+faststart"})


def _encode(path: Path, fmt: str, codec: str, n: int, seed: int = 0, options: dict | None = None) -> Path:
    """Video-only file in ``fmt``/``codec`` (the containers real corpora ship), via PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        vs = out.add_stream(codec, rate=FPS)
        vs.width = vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        for i, img in enumerate(_frames(n, seed)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def make_mpg(path: Path, n: int = N_FRAMES) -> Path:
    """MPEG-1 video in an MPEG program stream, as GRID's .mpg files."""
    return _encode(path, "mpeg", "mpeg1video", n)


def make_flv(path: Path, n: int = N_FRAMES) -> Path:
    """Sorenson H.263 in FLV, as CREMA-D's VideoFlash files (their audio is paired from AudioWAV)."""
    return _encode(path, "flv", "flv", n)


def make_wav(path: Path, seconds: float = CLIP_S, sr: int = 16000) -> Path:
    return write_audio(path, _tone(seconds, sr), sr)


def make_m4a(path: Path, seconds: float = CLIP_S, sr: int = 16000) -> Path:
    """AAC in an MPEG-4 audio container, as MEAD's audio files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = _tone(seconds, sr)
    with av.open(str(path), "w", format="ipod") as out:
        s = out.add_stream("aac", rate=sr, layout="mono")
        size = s.codec_context.frame_size or 1024
        for start in range(0, len(audio), size):
            chunk = np.zeros(size, np.float32)
            chunk[: len(audio[start:start + size])] = audio[start:start + size]
            f = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = sr, start, Fraction(1, sr)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize("maker,suffix", [(make_mp4, ".mp4"), (make_mpg, ".mpg"), (make_flv, ".flv")])
def test_measured_video_span_equals_decoded_frames_for_each_corpus_format(tmp_path, maker, suffix):
    path = maker(tmp_path / f"v{suffix}")
    facts = inspect_media(path, need_video=True, truncation_tolerance_frames=2)
    assert facts.fps == pytest.approx(FPS)
    assert facts.video.duration_s == pytest.approx(len(read_video(path).frames) / FPS)
    assert facts.video.duration_s == pytest.approx(CLIP_S)


@pytest.mark.parametrize("maker,sr", [(make_wav, 25000), (make_m4a, 16000)])
def test_separate_audio_files_report_rate_and_length(tmp_path, maker, sr):
    path = maker(tmp_path / ("a.wav" if maker is make_wav else "a.m4a"), seconds=1.0, sr=sr)
    facts = inspect_media(path, need_video=False, truncation_tolerance_frames=2)
    assert facts.video is None and facts.sample_rate == sr
    assert facts.audio.duration_s == pytest.approx(1.0, abs=0.07)   # AAC pads its last frame


def test_audio_file_where_video_is_required_is_refused(tmp_path):
    with pytest.raises(MediaError, match="no video stream"):
        inspect_media(make_wav(tmp_path / "a.wav"), need_video=True, truncation_tolerance_frames=2)


def test_mp4_cut_after_its_front_index_is_detected_as_truncated(tmp_path):
    """An index-first mp4 still opens when its tail is lost; the packets tell the truth."""
    good = make_mp4(tmp_path / "fs.mp4", n=50, audio=False, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    inspect_media(good, need_video=True, truncation_tolerance_frames=2)
    with pytest.raises(MediaError, match="truncated"):
        inspect_media(cut, need_video=True, truncation_tolerance_frames=2)


def test_clip_hash_covers_the_separate_audio_file(tmp_path):
    v = make_mp4(tmp_path / "v.mp4", audio=False)
    a1, a2 = make_wav(tmp_path / "a1.wav", 0.32), make_wav(tmp_path / "a2.wav", 0.36)
    assert sha256_files([v, a1], 4096) != sha256_files([v, a2], 4096)
    assert sha256_files([v, a1], 4096) == sha256_files([v, a1], 1 << 20)
