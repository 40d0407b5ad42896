"""The derived cache (imagintalk/preprocess/derived_cache.py): arrays mapped back exactly, damaged
files refused, nothing partial published, one key per model content wherever it is installed; and
dlib's face detector loaded from it finds the same faces as the one dlib builds."""

from __future__ import annotations

import logging
import os

import dlib
import numpy as np
import pytest
from sample_media import write_talking_clip

from imagintalk.media import read_video
from imagintalk.preprocess import detector as detector_mod
from imagintalk.preprocess.derived_cache import fingerprint, map_arrays, publish, save_arrays
from imagintalk.preprocess.face_track import to_gray

ARRAYS = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([[7, -1]], np.int32),
          "c": np.linspace(0, 1, 1000, dtype=np.float32)}


def test_arrays_are_mapped_back_exactly_as_plain_writable_arrays(tmp_path):
    path = tmp_path / "x.npys"
    save_arrays(path, ARRAYS)
    back = map_arrays(path, ARRAYS)
    for k, a in ARRAYS.items():
        assert type(back[k]) is np.ndarray and back[k].flags.writeable and back[k].flags.c_contiguous
        assert back[k].dtype == a.dtype and np.array_equal(back[k], a)
    back["a"][0, 0] = 99  # copy-on-write: the file keeps what was saved
    assert map_arrays(path, ARRAYS)["a"][0, 0] == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing record"])
def test_a_damaged_arrays_file_is_refused(tmp_path, damage):
    path = tmp_path / "x.npys"
    save_arrays(path, ARRAYS)
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[:-100], "garbage": b"\x93NUMPY garbage" * 10,
                      "missing record": whole}[damage])
    names = [*ARRAYS, "d"] if damage == "missing record" else list(ARRAYS)
    with pytest.raises(ValueError):
        map_arrays(path, names)


def test_publish_writes_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    publish(target, lambda tmp: tmp.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and os.listdir(target.parent) == ["x.bin"]

    def fails(tmp):
        tmp.write_bytes(b"part")
        raise OSError("disk full")

    publish(target, fails)  # an unwritable cache is passed over; the published file stays
    assert target.read_bytes() == b"whole" and os.listdir(target.parent) == ["x.bin"]


def test_the_key_follows_the_content_not_the_path(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    (tmp_path / "a.dat").write_bytes(data)
    (tmp_path / "b.dat").write_bytes(data)  # another clone's copy: same key
    changed = bytearray(data)
    changed[-1] ^= 1  # the last byte is in the last block
    (tmp_path / "c.dat").write_bytes(bytes(changed))
    (tmp_path / "d.dat").write_bytes(data + b"\0")
    keys = [fingerprint(tmp_path / f"{n}.dat") for n in "abcd"]
    assert keys[0] == keys[1] and len(set(keys)) == 3


@pytest.fixture
def hog_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGINTALK_DERIVED_CACHE", str(tmp_path / "derived"))
    detector_mod._dlib_hog.cache_clear()
    yield tmp_path / "derived" / f"frontal_face_detector-dlib{dlib.__version__}.svm"
    detector_mod._dlib_hog.cache_clear()


def test_the_cached_face_detector_finds_the_faces_dlib_builds_it_to_find(hog_cache, tmp_path, caplog):
    clip = write_talking_clip(tmp_path / "c.mp4", "astronaut", "bin blue at f two now", n_frames=8, seed=2)
    frames = to_gray(read_video(clip.path, fps=25).frames)
    built = dlib.get_frontal_face_detector()
    want = [[(r.left(), r.top(), r.right(), r.bottom()) for r in built(f, 0)] for f in frames]
    assert all(len(w) == 1 for w in want)
    first = detector_mod._dlib_hog()  # builds and caches
    assert hog_cache.exists() and not list(hog_cache.parent.glob("*.tmp"))
    detector_mod._dlib_hog.cache_clear()
    loaded = detector_mod._dlib_hog()  # as a fresh process: read from the cache
    assert loaded is not first
    got = [[(r.left(), r.top(), r.right(), r.bottom()) for r in loaded(f, 0)] for f in frames]
    assert got == want

    whole = hog_cache.read_bytes()
    for damaged in (b"garbage", whole[: len(whole) // 2]):  # rebuilt, with a warning, and re-cached
        hog_cache.write_bytes(damaged)
        detector_mod._dlib_hog.cache_clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = detector_mod._dlib_hog()
        assert "rebuilding dlib's face detector" in caplog.text and str(hog_cache) in caplog.text
        assert [[(r.left(), r.top(), r.right(), r.bottom()) for r in again(f, 0)] for f in frames] == want
        assert hog_cache.read_bytes() == whole
