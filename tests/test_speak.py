"""`imagintalk speak` and the Ray Serve endpoint, against a champion registered in a tmp MLflow.

The champion is assembled from untrained tiny stages (training is covered elsewhere): what is
checked here is the path from a video a user has to a wav of its duration and a dubbed mp4, and
every refusal the user can meet.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from train_support import register_untrained_stages, tiny_params, tracking_store, write_tiny_shards
from typer.testing import CliRunner

from imagintalk.emotions import EMOTIONS
from imagintalk.media import probe, read_video, write_mp4
from imagintalk.models.config import model_config
from imagintalk.registry import tracking
from pipelines.cli import app
from pipelines.promote import promote_model
from pipelines.register import register_composite

REPO = Path(__file__).resolve().parent.parent
N_FRAMES = 50


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    root = tmp_path_factory.mktemp("speak")
    shards = write_tiny_shards(root / "shards")
    params = tiny_params()
    audit = root / "audit"
    audit.mkdir()
    (audit / "result.json").write_text(json.dumps({"passed": True}))
    with tracking_store(root) as uri:
        c = tracking.client(uri)
        uris = register_untrained_stages(c, model_config("tiny", params), tracking.read_data_version(shards))
        version = register_composite({s: uris[s] for s in ("style_dit", "vocoder")}, params, audit_report=audit)
        assert promote_model("imagintalk", version=version.version, params=params).promoted
        yield {"root": root, "uri": uri}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from sample_media import write_talking_clip

    return write_talking_clip(tmp_path_factory.mktemp("clip") / "talk.mp4", n_frames=N_FRAMES).path


def _speak(champion, *args: str, params: Path | None = None):
    env = {"MLFLOW_TRACKING_URI": champion["uri"]}
    extra = ["--params", str(params)] if params else []
    return CliRunner().invoke(app, ["speak", *args, *extra], env=env)


def test_speak_writes_wav_of_the_clip_duration_and_a_dubbed_mp4(champion, clip, tmp_path):
    wav, dub = tmp_path / "out.wav", tmp_path / "dub.mp4"
    res = _speak(champion, str(clip), "-o", str(wav), "--dub", str(dub))
    assert res.exit_code == 0, res.output
    assert "spoke" in res.output.strip().splitlines()[-1]
    audio, sr = sf.read(wav)
    assert sr == 16000 and abs(len(audio) / sr - N_FRAMES / 25) <= 1 / 25
    info = probe(dub)
    assert info.has_video and info.has_audio and (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert len(read_video(dub).frames) == N_FRAMES


def test_speak_emotion_override_replaces_the_face_and_a_bad_name_lists_the_vocabulary(champion, clip, tmp_path,
                                                                                       monkeypatch):
    """Without --emotion the generator reads the face (landmarks → expression model); --emotion
    hands it the named emotion instead; a name outside the vocabulary is one line listing it,
    before any work."""
    from imagintalk.models.imagintalk import ImaginTalk

    seen, generate = [], ImaginTalk.generate

    def spy(self, *args, **kwargs):
        seen.append((args[4] if len(args) > 4 else kwargs.get("emotion"), kwargs.get("landmarks")))
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(ImaginTalk, "generate", spy)
    for name in ("face", "happy"):
        res = _speak(champion, str(clip), "-o", str(tmp_path / f"{name}.wav"),
                     *([] if name == "face" else ["--emotion", name]))
        assert res.exit_code == 0, res.output
    (face, landmarks), (happy, _) = seen
    assert face is None and landmarks.shape == (1, N_FRAMES, 136)
    assert happy.tolist() == [EMOTIONS.index("happy")]
    res = _speak(champion, str(clip), "-o", str(tmp_path / "x.wav"), "--emotion", "joyful")
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert "joyful" in line and ", ".join(EMOTIONS) in line and not (tmp_path / "x.wav").exists()


def test_speak_accepts_other_frame_rates_and_sizes(champion, clip, tmp_path):
    """A 30 fps, 200×200 upload goes through the same 25 fps preprocessing."""
    import cv2

    frames = read_video(clip, fps=30).frames
    big = np.stack([cv2.resize(f, (200, 200)) for f in frames])
    from imagintalk.media import read_audio

    src = write_mp4(tmp_path / "thirty.mp4", big, 30, read_audio(clip))
    wav = tmp_path / "thirty.wav"
    res = _speak(champion, str(src), "-o", str(wav))
    assert res.exit_code == 0, res.output
    assert abs(sf.info(wav).duration - N_FRAMES / 25) <= 1 / 25


@pytest.mark.parametrize("make,reason", [
    (lambda p: write_mp4(p, np.random.default_rng(0).integers(0, 255, (40, 96, 96, 3), np.uint8), 25),
     "no face found"),
    (lambda p: write_mp4(p, np.zeros((5, 96, 96, 3), np.uint8), 25), "clip too short"),
    (lambda p: p.write_bytes(b"not a video at all" * 10), "not a readable media file"),
])
def test_bad_inputs_get_one_line_errors(champion, tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    res = _speak(champion, str(path), "-o", str(tmp_path / "x.wav"))
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and str(path) in lines[-1] and reason in lines[-1]
    assert not (tmp_path / "x.wav").exists()


def test_the_cli_freezes_the_model_it_loaded_and_a_pipeline_loading_one_does_not(champion, clip, tmp_path,
                                                                                monkeypatch):
    """gc.freeze keeps a first call's collections off the loaded model (inference.Speaker); only a
    process that exists to speak may freeze: frozen garbage cycles are never collected."""
    from imagintalk.config import Params
    from imagintalk.serve.inference import Speaker

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    assert _speak(champion, str(clip), "-o", str(tmp_path / "x.wav")).exit_code == 0
    assert frozen == [True]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["uri"])
    Speaker("models:/imagintalk@champion", Params())  # as pipelines/evaluate.py loads it
    assert frozen == [True]


def test_too_long_limit_comes_from_params(champion, clip, tmp_path):
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["speak"]["max_duration_s"] = 1.0
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(doc))
    res = _speak(champion, str(clip), "-o", str(tmp_path / "x.wav"), params=params)
    assert res.exit_code == 1 and "clip too long" in res.output


def test_no_champion_registered_is_a_clear_error(tmp_path, clip):
    res = CliRunner().invoke(app, ["speak", str(clip)], env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/e.db"})
    assert res.exit_code == 1 and "no champion registered" in res.output


def test_folder_is_voiced_in_batch_and_refusals_are_recorded(champion, clip, tmp_path):
    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "good.mp4").write_bytes(clip.read_bytes())
    (folder / "broken.mp4").write_bytes(b"\0" * 100)
    res = _speak(champion, str(folder), "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/a/good.wav").exists()
    failures = json.loads((tmp_path / "out/failures.json").read_text())
    assert list(failures) == [str(folder / "broken.mp4")] and "refused" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, timeout: float = 120) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "video/mp4"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.ray
def test_serve_load_test_on_loopback(champion, clip):
    """Bounded concurrent load: every good answer is a wav of the clip's length; oversized, empty and
    malformed uploads get 4xx and do not harm the requests around them."""
    import ray
    from ray import serve

    from imagintalk.ray_session import start_ray
    from imagintalk.serve.app import HEALTH_PATH, SPEAK_PATH, start_server

    params = tiny_params().model_copy(update={"serve": tiny_params().serve.model_copy(
        update={"max_request_bytes": 2_000_000, "max_batch_size": 4})})
    # Ray first: its dashboard agent listens on a fixed port (52365) that a free port picked before
    # Ray started can be (a clean-clone run failed so)
    start_ray()
    port = _free_port()
    os.environ["MLFLOW_TRACKING_URI"] = champion["uri"]
    try:
        start_server("models:/imagintalk@champion", params, port=port)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(base + HEALTH_PATH, timeout=5) as r:
                    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.time() < deadline, "server never became healthy"
                time.sleep(1)
        good = clip.read_bytes()
        bodies = [good] * 6 + [b"\0" * 2_500_000, b"", b"garbage" * 50]
        with cf.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda b: _post(base + SPEAK_PATH, b), bodies))
        goods = answers[:6]
        assert all(code == 200 for code, _ in goods), [(c, b[:300]) for c, b in goods]
        for _, wav in goods:
            audio, sr = sf.read(io.BytesIO(wav))
            assert sr == 16000 and abs(len(audio) / sr - N_FRAMES / 25) <= 1 / 25
        assert [code for code, _ in answers[6:]] == [413, 400, 422], [b[:300] for _, b in answers[6:]]
        assert "not a readable media file" in json.loads(answers[8][1])["error"]
        assert _post(base + SPEAK_PATH, good)[0] == 200  # still healthy after the bad ones
        assert _post(base + SPEAK_PATH + "?emotion=happy", good)[0] == 200   # overrides the face
        code, body = _post(base + SPEAK_PATH + "?emotion=joyful", good)
        assert code == 400 and ", ".join(EMOTIONS) in json.loads(body)["error"]
    finally:
        serve.shutdown()
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if ray.is_initialized():
            ray.shutdown()
