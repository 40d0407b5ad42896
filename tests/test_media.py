"""Media I/O: real mp4 (H.264 + AAC) written and read back through PyAV; every bad-input path."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest

from imagintalk.errors import AudioQualityError, MediaError
from imagintalk.media import (
    align_audio_to_video,
    probe,
    read_audio,
    read_clip,
    read_video,
    write_audio,
    write_mp4,
)


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_mp4_round_trip_has_h264_aac_and_matching_lengths(tmp_path, noise_frames, tone):
    path = write_mp4(tmp_path / "a.mp4", noise_frames, 25, tone)
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.fps == 25 and info.has_audio and info.sample_rate == 16000
    assert abs(info.duration_s - 3.0) < 0.05
    clip = read_clip(path)
    assert clip.frames.shape == (75, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (48000,) and clip.audio.dtype == np.float32
    # AAC is lossy but a tone stays a tone: correlation with the source
    assert np.corrcoef(clip.audio[2000:46000], tone[2000:46000])[0, 1] > 0.95


def test_write_is_byte_identical_for_identical_input(tmp_path, noise_frames, tone):
    a = write_mp4(tmp_path / "a.mp4", noise_frames, 25, tone)
    b = write_mp4(tmp_path / "b.mp4", noise_frames, 25, tone)
    assert _sha(a) == _sha(b)


@pytest.mark.parametrize("src_fps,n", [(30, 90), (50, 150), (15, 45)])
def test_resampling_to_25fps_by_timestamp(tmp_path, src_fps, n):
    # each frame carries its index in its brightness so we can see which one was picked
    frames = np.stack([np.full((32, 32, 3), i * 255 // n, np.uint8) for i in range(n)])
    path = write_mp4(tmp_path / "v.mp4", frames, src_fps)
    v = read_video(path, fps=25)
    assert len(v.frames) == 75
    picked = v.frames[:, 16, 16, 0].astype(int)
    expected = np.array([int(k / 25 * src_fps) * 255 // n for k in range(75)])
    assert np.abs(picked - expected).max() <= 4  # H.264 quantisation on flat frames


def test_variable_frame_rate_lands_on_time_slots(tmp_path):
    """Frames with irregular pts (a phone dropping frames) are placed by time, not by counter."""
    path = tmp_path / "vfr.mp4"
    times_ms = [0, 40, 80, 200, 240, 280, 400]  # gaps at 120-160 and 320-360
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    v = read_video(path, fps=25)
    brightness = (v.frames[:, 16, 16, 0].astype(int) + 15) // 30
    # slot at 120 ms and 160 ms still shows frame 2 (80 ms): held, not shifted
    assert list(brightness[:6]) == [0, 1, 2, 2, 2, 3]


def test_audio_resampled_to_16k_mono(tmp_path):
    import soundfile as sf

    t = np.arange(44100 * 2) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 44100)
    audio = read_audio(tmp_path / "s.wav", 16000)
    assert abs(len(audio) - 32000) <= 2 and audio.dtype == np.float32
    spec = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spec) * 16000 / len(audio) - 440) < 5


def test_wav_and_flac_written(tmp_path, tone):
    for ext in ("wav", "flac"):
        p = write_audio(tmp_path / f"x.{ext}", tone)
        assert np.allclose(read_audio(p), tone, atol=1e-3)
    with pytest.raises(MediaError, match="unsupported audio format"):
        write_audio(tmp_path / "x.ogg", tone)


def test_small_av_mismatch_trimmed_large_refused():
    audio = np.zeros(48000 + 300, np.float32)
    out, mismatch = align_audio_to_video(audio, 75, 25, 16000, 1.0)
    assert len(out) == 48000 and mismatch > 0
    with pytest.raises(AudioQualityError, match="mismatch"):
        align_audio_to_video(np.zeros(48000 + 16000, np.float32), 75, 25, 16000, 1.0, path="x.mp4")


@pytest.mark.parametrize("make,reason", [
    (lambda p: p.write_bytes(b""), "zero-length"),
    (lambda p: p.write_bytes(b"\x00garbage" * 100), "not a readable media file"),
])
def test_bad_files_raise_media_error_naming_the_file(tmp_path, make, reason):
    p = tmp_path / "bad.mp4"
    make(p)
    with pytest.raises(MediaError, match=reason) as ei:
        read_video(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_truncated_mp4_raises_media_error(tmp_path, noise_frames, tone):
    good = write_mp4(tmp_path / "good.mp4", noise_frames, 25, tone)
    bad = tmp_path / "trunc.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MediaError) as ei:
        read_clip(bad)
    assert str(bad) in str(ei.value)


def test_missing_audio_track_and_missing_file(tmp_path, noise_frames):
    silent = write_mp4(tmp_path / "v.mp4", noise_frames, 25)
    assert not probe(silent).has_audio
    with pytest.raises(MediaError, match="no audio track"):
        read_audio(silent)
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


def test_dub_copies_h264_and_adds_aac(tmp_path, noise_frames, tone):
    from imagintalk.media.mux import dub_video

    src = write_mp4(tmp_path / "in.mp4", noise_frames, 25, tone)
    out = dub_video(src, tone[::-1].copy(), tmp_path / "out.mp4")
    info = probe(out)
    assert (info.video_codec, info.audio_codec, info.n_frames) == ("h264", "aac", 75)
    assert np.array_equal(read_video(out).frames, read_video(src).frames)  # picture copied, not re-encoded


def test_dub_reencodes_webm_input(tmp_path, noise_frames, tone):
    from imagintalk.media.mux import dub_video

    src = tmp_path / "in.webm"
    with av.open(str(src), "w") as out:
        s = out.add_stream("libvpx", rate=30)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for i in range(45):
            f = av.VideoFrame.from_ndarray(noise_frames[i], format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 30)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    info = probe(dub_video(src, tone[:24000], tmp_path / "out.mp4"))
    assert info.video_codec == "h264" and info.has_audio and abs(info.duration_s - 1.5) < 0.1


@pytest.mark.parametrize("n", [32000, 40000, 48000])
def test_aac_frame_padding_is_trimmed_so_lengths_match(tmp_path, n):
    """AAC pads its last 1024-sample frame; the decoded audio must still end where the signal did,
    or every clip whose length is not a multiple of 1024 samples looks out of step with its video."""
    audio = (0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32)
    path = write_mp4(tmp_path / "a.mp4", np.zeros((n // 640, 32, 32, 3), np.uint8), 25, audio)
    back = read_audio(path)
    assert len(back) == n
    assert np.corrcoef(back[1000:-1000], audio[1000:-1000])[0, 1] > 0.999  # no shift from priming
    assert abs(read_clip(path).av_mismatch_s) < 1 / 25  # within a frame: only the n/640 rounding
