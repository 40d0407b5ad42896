"""dlib's face descriptor network run by torch (imagintalk/preprocess/dlib_resnet.py) gives dlib's
own descriptors on real aligned chips, and refuses a file that is not that network."""

from __future__ import annotations

import numpy as np
import pytest
from sample_media import photo, still_landmarks

from imagintalk.config import FaceConfig
from imagintalk.errors import ArtifactError
from imagintalk.preprocess.detector import face_recognition_models
from imagintalk.preprocess.dlib_resnet import DlibFaceResNet
from imagintalk.preprocess.identity import face_chip, face_descriptors


@pytest.fixture(scope="module")
def chips():
    cfg = FaceConfig()
    out = []
    for name, size in (("astronaut", 160), ("grace_hopper", 200), ("astronaut", 120)):
        img = photo(name, size)
        out.append(face_chip(img, still_landmarks(img), np.full(4, np.nan), cfg))
    return np.stack(out)


def test_torch_descriptors_equal_dlibs_own(chips):
    ours = face_descriptors(chips, "torch")
    theirs = face_descriptors(chips, "dlib")
    assert ours.shape == (3, 128) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-4
    # and they still tell people apart: the same face at two sizes is closer than another person
    assert np.linalg.norm(ours[0] - ours[2]) < 0.6 < np.linalg.norm(ours[0] - ours[1])


def test_a_batch_gives_what_one_chip_at_a_time_gives(chips):
    one_by_one = np.stack([face_descriptors(c[None], "torch")[0] for c in chips])
    assert np.abs(face_descriptors(chips, "torch") - one_by_one).max() < 1e-5


def test_a_file_that_is_not_dlibs_resnet_is_refused(tmp_path):
    real = open(face_recognition_models().face_recognition_model_location(), "rb").read()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(real[: len(real) // 2])  # the later layers are missing
    with pytest.raises(ArtifactError, match=r"cut.dat: not dlib's face-recognition ResNet: the file ends"):
        DlibFaceResNet(cut)
    other = tmp_path / "predictor.dat"
    other.write_bytes(b"\x01\x0dloss_metric_2" + bytes(64))
    with pytest.raises(ArtifactError, match="predictor.dat"):
        DlibFaceResNet(other)
