"""Hostile media against speak and serving (issue 14): outputs never overwrite inputs, a truncated
file is refused, a resolution change mid-stream is that clip's own error and never fails the
clips batched with it, and decoding memory does not grow with the input's resolution."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from test_corpora_media import make_mp4
from typer.testing import CliRunner

from imagintalk.config import Params
from imagintalk.errors import ImaginTalkError, MediaError
from imagintalk.media import read_video, write_mp4
from imagintalk.media.video import decode_size
from imagintalk.serve.inference import Speaker, check_video
from pipelines.cli import app


def resolution_change(path: Path) -> Path:
    """MPEG-TS of 64² frames followed by 96² frames (two segments back to back, as a stream
    spliced from two sources): the decoder emits frames of both sizes."""
    parts = []
    for size in (64, 96):
        seg = path.with_name(f"{path.stem}.{size}.ts")
        with av.open(str(seg), "w", format="mpegts") as out:
            vs = out.add_stream("mpeg2video", rate=25)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
            for i in range(15):
                f = av.VideoFrame.from_ndarray(np.full((size, size, 3), 90, np.uint8), format="rgb24")
                f.pts = i
                for p in vs.encode(f):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        parts.append(seg.read_bytes())
    path.write_bytes(b"".join(parts))
    return path


def test_resolution_change_midstream_is_a_one_line_media_error(tmp_path):
    path = resolution_change(tmp_path / "spliced.ts")
    with pytest.raises(MediaError, match=r"resolution changes mid-stream \(64x64 -> 96x96") as err:
        read_video(path)
    assert err.value.path == str(path)


class _FakeComposite:
    """Stands in for the registered pyfunc: 640 samples of silence per frame, or a crash."""

    params = Params()

    def generate_many(self, inputs, emotions=None):
        if any(x.n_frames == 13 for x in inputs):
            raise ValueError("boom")   # an unforeseen library error on one clip breaks its batch
        return [np.zeros(x.n_frames * 640, np.float32) for x in inputs]


def test_one_bad_clip_in_a_batch_fails_only_itself(tmp_path, monkeypatch):
    from imagintalk.registry import composite

    good = make_mp4(tmp_path / "good.mp4", n=25)
    crash = make_mp4(tmp_path / "crash.mp4", n=13)
    spliced = resolution_change(tmp_path / "spliced.ts")
    monkeypatch.setattr(composite, "video_inputs", lambda p, params: composite.VideoInputs(
        lips=np.zeros(1), face=np.zeros(1), identity=np.zeros(1), n_frames=len(read_video(p).frames)))
    speaker = Speaker.__new__(Speaker)
    speaker.pyfunc, speaker.params = _FakeComposite(), Params()
    out = speaker.speak_batch([str(good), str(spliced), str(crash), str(good)])
    assert [type(o).__name__ for o in out] == ["ndarray", "MediaError", "MediaError", "ndarray"]
    assert "resolution changes mid-stream" in out[1].reason and out[1].path == str(spliced)
    assert "ValueError: boom" in out[2].reason and out[2].path == str(crash)
    assert len(out[0]) == len(out[3]) == 25 * 640


def test_truncated_mp4_is_refused_before_voicing_not_voiced_short(tmp_path):
    clip = make_mp4(tmp_path / "cut.mp4", n=70, faststart=True)
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])    # header still says 2.8 s
    with pytest.raises(MediaError, match="truncated"):
        check_video(clip, 0.5, 60.0)
    assert check_video(make_mp4(tmp_path / "whole.mp4", n=70), 0.5, 60.0) == pytest.approx(2.8, abs=0.05)


def test_large_frames_are_downscaled_while_decoding(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (3, 1440, 2560, 3), np.uint8)
    path = write_mp4(tmp_path / "qhd.mp4", frames, 25)
    video = read_video(path)
    h, w = video.frames.shape[1:3]
    assert h * w <= Params().media.max_decode_pixels and abs(w / h - 16 / 9) < 0.01
    assert read_video(path, max_pixels=None).frames.shape[1:3] == (1440, 2560)
    assert decode_size(3840, 2160, 1280 * 720) == (1280, 720) and decode_size(64, 48, 1280 * 720) == (64, 48)


def _speak(*args: str):
    return CliRunner().invoke(app, ["speak", *args], env={"MLFLOW_TRACKING_URI": "sqlite:////nonexistent/x.db"})


def test_speak_refuses_to_dub_or_write_over_its_input_video(tmp_path):
    clip = make_mp4(tmp_path / "a.mp4", n=25)
    before = clip.read_bytes()
    for args in (["--dub", str(clip)], ["-o", str(clip)], ["--dub", str(tmp_path / "." / "a.mp4")]):
        res = _speak(str(clip), *args)
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        [line] = res.output.strip().splitlines()
        assert line.startswith("error: ") and "would overwrite the input video" in line
    assert clip.read_bytes() == before


def test_speak_refuses_to_dub_a_folder_onto_itself(tmp_path):
    folder = tmp_path / "in"
    clips = [make_mp4(folder / "x.mp4", n=25), make_mp4(folder / "sub" / "y.mp4", n=25)]
    before = [c.read_bytes() for c in clips]
    res = _speak(str(folder), "--dub", str(folder))
    assert res.exit_code == 1 and res.output.strip().startswith(f"error: {folder}: output ")
    assert [c.read_bytes() for c in clips] == before and not (folder / "speech").exists()


def test_overwrite_refusal_is_a_typed_error_for_library_callers(tmp_path):
    from pipelines.speak import refuse_overwrites

    a = tmp_path / "a.mp4"
    with pytest.raises(ImaginTalkError, match="overwrite each other"):
        refuse_overwrites([(a, tmp_path / "o.wav", tmp_path / "o.wav")])
