"""dlib's 68-point shape predictor compiled with numba (imagintalk/preprocess/shape_predictor.py)
gives dlib's own landmarks on real H.264 frames, alone or in batches, and refuses other files."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import dlib
import numpy as np
import pytest
from sample_media import photo, write_talking_clip

from imagintalk.config import FaceConfig, load_params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.media import read_video
from imagintalk.preprocess.detector import DlibFaceDetector, face_recognition_models
from imagintalk.preprocess.face_track import to_gray, track_faces
from imagintalk.preprocess.shape_predictor import ShapePredictor, shape_predictor


@pytest.fixture(scope="module")
def predictor():
    return shape_predictor(face_recognition_models().pose_predictor_model_location())


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("sp") / "astronaut.mp4"
    write_talking_clip(path, "astronaut", "lay red with f three again", n_frames=30, seed=3)
    return to_gray(read_video(path, fps=25).frames)


@functools.cache
def _dlib_predictor():
    return dlib.shape_predictor(face_recognition_models().pose_predictor_model_location())


def _dlib_points(gray: np.ndarray, rect: np.ndarray) -> np.ndarray:
    shape = _dlib_predictor()(np.ascontiguousarray(gray), dlib.rectangle(*(int(v) for v in rect)))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def _rects(frames: np.ndarray) -> np.ndarray:
    box = DlibFaceDetector(predictor="dlib").detect(frames[0])[0]
    base = np.array([round(box.left), round(box.top), round(box.right), round(box.bottom)], np.float64)
    # a box wandering a few pixels, as the tracker's boxes do
    return np.stack([base + np.array([1, -1, 1, -1]) * (t % 5 - 2) for t in range(len(frames))])


def test_landmarks_equal_dlibs_on_real_frames(predictor, frames):
    rects = _rects(frames)
    ours = predictor.predict(frames, rects)
    theirs = np.stack([_dlib_points(f, r) for f, r in zip(frames, rects, strict=True)])
    assert ours.shape == (30, 68, 2) and ours.dtype == np.float32
    assert np.array_equal(ours, theirs)


def test_a_batch_gives_what_one_frame_at_a_time_gives(predictor, frames):
    rects = _rects(frames)
    one_by_one = np.stack([predictor.predict(f[None], r[None])[0] for f, r in zip(frames, rects, strict=True)])
    assert np.array_equal(predictor.predict(frames, rects), one_by_one)
    sub = predictor.predict(frames, rects, whole_pixels=False)
    assert np.abs(sub - one_by_one).max() <= 0.5 and not np.array_equal(sub, one_by_one)


def test_a_face_box_reaching_out_of_the_frame_matches_dlib(predictor):
    face = to_gray(photo("grace_hopper", 120)[None])[0]
    rect = np.array([[-30.0, 10.0, 90.0, 130.0]])  # a third of the box left of the frame
    assert np.array_equal(predictor.predict(face[None], rect)[0], _dlib_points(face, rect[0]))


def test_the_tracker_gives_the_same_track_with_either_predictor(frames):
    a = track_faces(frames, FaceConfig(predictor_backend="numba"))
    b = track_faces(frames, FaceConfig(predictor_backend="dlib"))
    assert a.found.all() and np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.boxes, b.boxes)


def test_other_model_files_are_refused(tmp_path):
    five = face_recognition_models().pose_predictor_five_point_model_location()
    with pytest.raises(ArtifactError, match="not a 68-point dlib shape predictor"):
        ShapePredictor(five)
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x02" + bytes(100))
    with pytest.raises(ArtifactError, match="junk.dat: not a dlib shape predictor"):
        ShapePredictor(junk)


@pytest.mark.parametrize(("key", "value"), [("predictor_backend", "fast"), ("descriptor_backend", "onnx"),
                                            ("predictor_backend", 3)])
def test_a_bad_backend_is_a_one_line_config_error(tmp_path, key, value):
    path = tmp_path / "params.yaml"
    path.write_text(f"face:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=f"params.yaml: face.{key}: Input should be 'numba' or 'dlib'|"
                                          f"params.yaml: face.{key}: Input should be 'torch' or 'dlib'") as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_warm_up_compiles_every_kernel_with_the_types_real_use_needs(tmp_path):
    """numba#10128: Ray workers must only read numba's cache, so warm_kernels (called by
    ray_session.warm_jit_caches before any worker starts) writes every signature a worker uses."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    warm = "from imagintalk.preprocess.shape_predictor import warm_kernels; warm_kernels()"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, timeout=300)
    written = sorted(p.name for p in tmp_path.rglob("*.nbc"))
    assert len(written) == 6 and all(n.startswith("shape_predictor.") for n in written), written
    use = ("import numpy as np; from imagintalk.preprocess.detector import DlibFaceDetector; "
           "g = np.zeros((40, 40), np.uint8); "
           "from imagintalk.preprocess.detector import Box; DlibFaceDetector().landmarks(g, Box(5, 5, 35, 35))")
    subprocess.run([sys.executable, "-c", use], env=env, check=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert sorted(p.name for p in tmp_path.rglob("*.nbc")) == written  # nothing new compiled


def test_a_fresh_process_reads_the_parsed_arrays_from_the_derived_cache(frames, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("IMAGINTALK_DERIVED_CACHE", str(tmp_path / "derived"))
    model = face_recognition_models().pose_predictor_model_location()
    rects = _rects(frames)[:4]
    shape_predictor.cache_clear()  # as in a fresh process
    try:
        parsed = shape_predictor(model)
        cached = list((tmp_path / "derived").glob("shape_predictor-*.npys"))
        assert len(cached) == 1 and not list((tmp_path / "derived").glob("*.tmp*"))
        shape_predictor.cache_clear()
        reread = shape_predictor(model)
        assert reread is not parsed
        assert np.array_equal(reread.predict(frames[:4], rects), parsed.predict(frames[:4], rects))
        whole = cached[0].read_bytes()
        for damaged in (b"not arrays", whole[: len(whole) // 2]):  # passed over, with a warning
            cached[0].write_bytes(damaged)
            shape_predictor.cache_clear()
            caplog.clear()
            again = shape_predictor(model)
            assert np.array_equal(again.predict(frames[:4], rects), parsed.predict(frames[:4], rects))
            assert "re-parsing" in caplog.text and str(cached[0]) in caplog.text
            assert cached[0].read_bytes() == whole  # and written whole again
    finally:
        shape_predictor.cache_clear()
