"""The facial-expression stage: landmark features, the model, the labelling and where it is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagintalk.emotions import EMOTION_INDEX, EMOTIONS, emotion_override
from imagintalk.errors import ConfigError
from imagintalk.models.batch import random_batch
from imagintalk.models.config import model_config
from imagintalk.models.expression import (
    ExpressionModel,
    ExpressionScore,
    accuracy,
    interpolate_lost,
    window_means,
)
from imagintalk.preprocess.expression_features import EXPRESSION_ANCHORS, normalised_landmarks
from imagintalk.preprocess.face_track import FaceTrack
from imagintalk.preprocess.mean_face import MEAN_FACE_UNIT

CFG = model_config("tiny")
FACE = np.concatenate([np.stack([np.linspace(0, 1, 17), np.full(17, 0.9)], 1), MEAN_FACE_UNIT]).astype(np.float32)
BROWS = slice(17, 27)


def _track(frames: np.ndarray, found: np.ndarray) -> FaceTrack:
    t = len(frames)
    return FaceTrack(frames.astype(np.float32), found, np.zeros((t, 4), np.float32), ~found)


def test_landmarks_are_pose_free_and_lost_frames_are_nan():
    """A face rotated, scaled and moved in the frame gives the same features; a lost frame is NaN."""
    rot = np.deg2rad(12)
    m = 180 * np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    frames = np.stack([FACE, FACE @ m.T + [40, 25], FACE])
    feats = normalised_landmarks(_track(frames, np.array([True, True, False])))
    assert feats.dtype == np.float16 and feats.shape == (3, 136)
    np.testing.assert_allclose(feats[0].astype(np.float32), feats[1].astype(np.float32), atol=2e-3)
    # the anchors land on the mean face; expression points keep their offsets
    anchors = feats[0].astype(np.float32).reshape(68, 2)[list(EXPRESSION_ANCHORS)]
    np.testing.assert_allclose(anchors, FACE[list(EXPRESSION_ANCHORS)], atol=2e-3)
    assert np.isnan(feats[2]).all()


def test_interpolation_fills_lost_frames_between_and_beyond_seen_ones():
    probs = torch.zeros(2, 6, 3)
    probs[0, 1] = torch.tensor([1.0, 0, 0])
    probs[0, 4] = torch.tensor([0, 1.0, 0])
    seen = torch.tensor([[False, True, False, False, True, False], [False] * 6])
    out = interpolate_lost(probs, seen)
    torch.testing.assert_close(out[0, 0], torch.tensor([1.0, 0, 0]))             # held before the first
    torch.testing.assert_close(out[0, 2], torch.tensor([2 / 3, 1 / 3, 0]))       # linear in between
    torch.testing.assert_close(out[0, 5], torch.tensor([0, 1.0, 0]))             # held after the last
    assert out[1].abs().sum() == 0                                               # never seen: unknown


def _clips(n: int, t: int, seed: int, lost: float = 0.0) -> dict[str, torch.Tensor]:
    """Landmark clips whose brows rise with the emotion index (plus per-speaker offsets and jitter)."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 4, n)
    lm = np.repeat(FACE[None, None], n, 0).repeat(t, 1)
    lm = lm + 0.01 * g.standard_normal((n, 1, 68, 2)) + 0.003 * g.standard_normal((n, t, 68, 2))
    lm[:, :, BROWS, 1] -= 0.03 * labels[:, None, None]
    found = g.random((n, t)) >= lost
    return {"landmarks": torch.tensor(lm.reshape(n, t, 136), dtype=torch.float32),
            "face_found": torch.tensor(found), "lip_mask": torch.ones(n, t, dtype=torch.bool),
            "emotion": torch.tensor(labels)}


def test_model_learns_expression_and_labels_unseen_clips():
    torch.manual_seed(0)
    model = ExpressionModel(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(60):
        loss, metrics = model.loss(_clips(16, 20, step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert {"loss", "frame_acc", "window_acc"} <= set(metrics)
    model.eval()
    test = _clips(32, 26, 999, lost=0.2)
    score = ExpressionScore(model)
    score.add(test)
    assert score.result()["expression_acc"] >= 0.9
    labels = model.label_batch(test)
    assert labels.probs.shape == (32, 26, len(EMOTIONS))
    torch.testing.assert_close(labels.probs.sum(-1), torch.ones(32, 26))
    assert torch.equal(labels.interpolated, ~test["face_found"])


def test_loss_skips_unlabelled_clips_and_padding_changes_nothing():
    model = ExpressionModel(CFG).eval()
    batch = _clips(2, 10, 0)
    batch["emotion"] = torch.tensor([-1, -1])
    loss, _ = model.loss(batch)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    one = model.label(batch["landmarks"][:1, :7], batch["face_found"][:1, :7]).probs
    padded = model.label(batch["landmarks"][:1], batch["face_found"][:1],
                         torch.arange(10)[None] < 7).probs
    torch.testing.assert_close(padded[:, :7], one)
    assert padded[:, 7:].abs().sum() == 0


def test_window_accuracy_averages_half_second_windows():
    probs = torch.zeros(1, 26, 3)
    probs[0, :, 1] = 1.0
    probs[0, ::4, 1], probs[0, ::4, 2] = 0.0, 1.0   # a quarter of the frames disagree
    means, has = window_means(probs, torch.ones(1, 26, dtype=torch.bool), 13)
    assert means.shape == (1, 2, 3) and has.all()
    r = accuracy(probs, torch.tensor([1]), torch.ones(1, 26, dtype=torch.bool), 13)
    assert r["window_acc"] == 1.0 and r["frame_acc"] < 0.8 and r["window_n"] == 2


def test_another_vocabulary_is_refused_naming_both():
    other = ExpressionModel(CFG, vocabulary=[f"e{i}" for i in range(len(EMOTIONS))])
    with pytest.raises(ConfigError, match=r"e0, e1.*neutral, happy"):
        other.check_vocabulary(EMOTIONS, "shards")
    from imagintalk.train.stages import build_stage

    with pytest.raises(ConfigError, match="e0"):
        build_stage("style_dit", CFG, {"error_detector": torch.nn.Identity(), "expression": other})


def test_emotion_override_names_the_vocabulary():
    assert emotion_override("Happy") == EMOTION_INDEX["happy"]
    assert emotion_override(None) is None and emotion_override("") is None
    with pytest.raises(ConfigError, match="neutral, happy, sad") as err:
        emotion_override("joyful")
    assert "\n" not in str(err.value)


def test_style_dit_reads_the_face_not_the_label():
    """The style stage's loss is the same whatever the corpus label says: c_emo comes from the
    expression model over the landmarks (and changes when the face does)."""
    from imagintalk.models.stages import build_stage

    stage = build_stage("style_dit", CFG).eval()
    batch = random_batch(CFG.vocab, [8, 6], seed=1)

    def loss(b):
        torch.manual_seed(0)
        return float(stage.loss(b)[0].detach())

    base = loss(batch)
    assert loss({**batch, "emotion": (batch["emotion"] + 1) % len(EMOTIONS)}) == base
    assert loss({**batch, "landmarks": batch["landmarks"] + 0.5}) != base
