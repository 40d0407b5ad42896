"""Face track, mouth ROI, mouth opening and identity on real photos (scikit-image's astronaut,
matplotlib's Grace Hopper) animated and encoded as H.264 clips."""

from __future__ import annotations

import cv2
import dlib
import numpy as np
import pytest
from sample_media import photo, still_landmarks, talking_frames, write_talking_clip

from imagintalk.config import FaceConfig
from imagintalk.media import read_video
from imagintalk.preprocess.detector import DlibFaceDetector
from imagintalk.preprocess.face_track import to_gray, track_faces
from imagintalk.preprocess.identity import _shape, face_descriptor, identity_embedding
from imagintalk.preprocess.mean_face import DLIB_CHIP_POINTS, mean_face
from imagintalk.preprocess.roi import (
    apply_affine,
    make_mouth_rois,
    mouth_opening,
    mouth_roi_transforms,
    similarity_transform,
    smooth_landmarks,
)

CFG = FaceConfig()


class CountingDetector(DlibFaceDetector):
    """The dlib backend, counting detector calls per frame index it was asked about."""

    def __init__(self):
        super().__init__()
        self.detect_calls = 0

    def detect(self, image):
        self.detect_calls += 1
        return super().detect(image)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "astronaut.mp4"
    made = write_talking_clip(path, "astronaut", n_frames=50, seed=1)
    return made, read_video(path, fps=25).frames


@pytest.fixture(scope="module")
def track(clip):
    return track_faces(clip[1], CFG)


def test_landmarks_found_on_nearly_every_frame_of_an_h264_clip(clip, track):
    assert track.landmarks.shape == (50, 68, 2) and track.landmarks.dtype == np.float32
    assert track.face_ratio >= 0.95
    # key frames only: far fewer detector runs than frames
    assert track.detections <= 50 // CFG.detect_every + 2


def test_mouth_rois_are_96px_gray_and_centred_on_the_mouth(clip, track):
    made, frames = clip
    rois = make_mouth_rois(frames, track, CFG)
    assert rois.shape == (50, 96, 96) and rois.dtype == np.uint8
    # the (temporally smoothed) mouth landmarks land on the crop centre, the eyes far above it
    maps = mouth_roi_transforms(track, CFG)
    smooth = smooth_landmarks(track.landmarks, CFG.smooth_window)
    mouth = np.stack([apply_affine(m, lm[48:68]).mean(0) for m, lm in zip(maps, smooth, strict=True)])
    assert np.abs(mouth - 47.5).max() < 0.01
    eyes = np.stack([apply_affine(m, lm[36:48]).mean(0) for m, lm in zip(maps, smooth, strict=True)])
    assert (eyes[:, 1] < 0).all()


def test_roi_scale_does_not_depend_on_the_face_size_in_the_frame():
    widths = []
    for size in (160, 120):
        frames = np.stack([photo("astronaut", size)] * 3)
        tr = track_faces(frames, CFG)
        m, lm = mouth_roi_transforms(tr, CFG)[1], tr.landmarks[1]
        widths.append(np.linalg.norm(apply_affine(m, lm[54]) - apply_affine(m, lm[48])))
    assert widths[0] == pytest.approx(widths[1], rel=0.05)
    assert 40 < widths[0] < 80  # a mouth, about 0.6 of the 96 px crop


def test_roi_pixels_follow_a_marker_painted_on_the_mouth():
    """Independent of our own transforms: a green dot painted on the lips ends up at the crop centre."""
    face = photo("astronaut")
    lm = still_landmarks(face)
    cx, cy = np.round(lm[48:68].mean(0)).astype(int)
    frames = talking_frames(face, np.zeros(12), seed=3)  # jittered, so the dot moves with the face
    frames[:, cy - 1:cy + 2, cx - 1:cx + 2] = (0, 255, 0)
    tr = track_faces(frames, CFG)
    greenness = np.clip(frames[..., 1].astype(int) - frames[..., 0], 0, 255).astype(np.uint8)
    for r in make_mouth_rois(greenness, tr, CFG):
        y, x = np.unravel_index(np.argmax(r), r.shape)
        assert abs(x - 47.5) < 5 and abs(y - 47.5) < 5
    assert make_mouth_rois(frames, tr, CFG).std() > 5  # real texture, not a blank crop


def test_mouth_opening_tracks_the_animated_jaw(clip, track):
    made, _ = clip
    opening = mouth_opening(track)
    assert opening.shape == (50,) and opening.dtype == np.float32
    assert np.corrcoef(opening, made.openings)[0, 1] > 0.8


@pytest.mark.parametrize("batch", [1, 10])
def test_lost_face_is_redetected_and_short_gaps_are_interpolated(batch):
    cfg = FaceConfig(landmark_batch=batch)
    face = photo("astronaut")
    frames = talking_frames(face, np.full(30, 3.0), seed=2)
    rng = np.random.default_rng(0)
    frames[12:15] = rng.integers(0, 255, frames[12:15].shape, dtype=np.uint8)  # 3 frames without a face
    frames[23:] = np.roll(frames[23:], 30, axis=2)  # the face jumps 30 px right mid-interval
    det = CountingDetector()
    tr = track_faces(frames, cfg, det)
    assert not tr.found[12:15].any() and tr.filled[12:15].all()
    assert tr.found[:12].all() and tr.found[15:].all()
    # filled frames lie between their neighbours (linear interpolation)
    lo, hi = tr.landmarks[11, 30], tr.landmarks[15, 30]
    assert np.all(tr.landmarks[13, 30] >= np.minimum(lo, hi) - 1e-3)
    assert np.all(tr.landmarks[13, 30] <= np.maximum(lo, hi) + 1e-3)
    # after the jump the tracker re-detects and follows: the nose tip moved ~30 px
    assert abs((tr.landmarks[24, 30, 0] - tr.landmarks[21, 30, 0]) - 30) < 4
    assert det.detect_calls >= 30 // CFG.detect_every + 3


class OneAtATime(DlibFaceDetector):
    """The dlib backend without ``landmarks_many``: the tracker then landmarks frame by frame."""

    def __getattribute__(self, name):
        if name == "landmarks_many":
            raise AttributeError(name)
        return super().__getattribute__(name)


class CountingBatches(DlibFaceDetector):
    def __init__(self):
        super().__init__()
        self.runs: list[int] = []

    def landmarks_many(self, images, boxes):
        self.runs.append(len(images))
        return super().landmarks_many(images, boxes)


def test_landmarks_in_runs_follow_the_face_as_frame_by_frame_tracking_does(clip):
    made, frames = clip
    assert CFG.landmark_batch == CFG.detect_every == 25  # the defaults: a run spans the frames between key frames
    det = CountingBatches()
    runs = track_faces(frames, CFG, det)
    one_by_one = track_faces(frames, CFG.model_copy(update={"landmark_batch": 1}))
    assert runs.found.all() and runs.detections == one_by_one.detections == 2
    # the 48 tracked frames (key frames 0 and 25) in two predictor calls, not 48
    assert det.runs == [24, 24]
    mouth = np.abs(runs.landmarks[:, 48:] - one_by_one.landmarks[:, 48:])
    assert mouth.mean() < 1.0 and np.corrcoef(mouth_opening(runs), made.openings)[0, 1] > 0.8
    # without landmarks_many the same runs are landmarked one frame at a time: the same points
    assert np.array_equal(track_faces(frames, CFG, OneAtATime()).landmarks, runs.landmarks)


def test_noise_video_has_no_face():
    frames = np.random.default_rng(0).integers(0, 255, (10, 96, 96, 3), dtype=np.uint8)
    tr = track_faces(frames, CFG)
    assert tr.face_ratio == 0.0 and np.isnan(tr.landmarks).all()
    with pytest.raises(ValueError):
        make_mouth_rois(frames, tr, CFG)


def test_mean_face_reproduces_dlibs_own_chip_alignment():
    face = photo("grace_hopper")
    lm = still_landmarks(face)
    details = dlib.get_face_chip_details(_shape(lm, np.full(4, np.nan)), 200, 0.0)
    m = similarity_transform(mean_face(DLIB_CHIP_POINTS, size=200), lm[list(DLIB_CHIP_POINTS)])
    assert np.arctan2(m[1, 0], m[0, 0]) == pytest.approx(details.angle, abs=1e-9)
    assert np.hypot(m[0, 0], m[1, 0]) == pytest.approx(details.rect.width() / 200, rel=1e-6)


def test_similarity_transform_recovers_a_known_rotation_scale_shift():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 2)) * 20
    a, s, t = 0.3, 1.7, np.array([5.0, -8.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = similarity_transform(src, src @ (s * rot).T + t)
    assert np.allclose(m[:, :2], s * rot) and np.allclose(m[:, 2], t)


def test_identity_is_unit_norm_and_tells_two_people_apart(clip, track):
    _, frames = clip
    cfg3 = FaceConfig(descriptor_frames=3)
    chip, ident = identity_embedding(frames, track, cfg3)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert ident.shape == (128,) and ident.dtype == np.float32
    assert np.linalg.norm(ident) == pytest.approx(1.0, abs=1e-5)

    other = photo("grace_hopper")
    gframes = np.stack([other] * 3)
    _, gident = identity_embedding(gframes, track_faces(gframes, CFG), cfg3)
    # one frame of the clip is close to the clip's mean (same person); Grace Hopper is beyond
    # dlib's 0.6 same-person distance (on raw descriptors, ~0.4 after normalisation)
    single = face_descriptor(chip)
    single /= np.linalg.norm(single)
    assert np.linalg.norm(single - ident) < 0.2
    assert np.linalg.norm(ident - gident) > 0.4
    assert float(ident @ gident) < float(ident @ single)


def test_faces_in_large_frames_are_detected_on_a_downscaled_copy():
    big = np.stack([cv2.resize(photo("astronaut"), (800, 800), interpolation=cv2.INTER_CUBIC)] * 2)
    small_track = track_faces(np.stack([photo("astronaut")] * 2), CFG)
    big_track = track_faces(big, CFG)  # detect_max_side 640 < 800
    assert CFG.detect_max_side < 800 and big_track.face_ratio == 1.0
    # the same face, five times the size: landmarks scale with it (to a pixel or two)
    assert np.abs(big_track.landmarks[0] / 5 - small_track.landmarks[0]).mean() < 1.5


def test_gray_and_rgb_frames_give_the_same_track(clip):
    _, frames = clip
    a = track_faces(frames[:12], CFG)
    b = track_faces(to_gray(frames[:12]), CFG)
    assert np.array_equal(a.landmarks, b.landmarks)
