"""Lip sync in the field's form (LSE-C/LSE-D): SyncNet's upstream layout, the offset search, the crops,
the judge chosen by name from the pretrained catalogue, and its rows in an evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sample_media import write_talking_clip

from imagintalk.config import Params
from imagintalk.errors import ConfigError
from imagintalk.eval.ladder import Clip, Rendered
from imagintalk.eval.sync import (
    NO_JUDGE,
    SyncJudge,
    SyncNet,
    choose_sync,
    face_crops,
    load_syncnet,
    lse_rows,
    mfcc,
    score_features,
)
from imagintalk.pretrained import pull

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# syncnet_python's S, read off its source: module names and shapes its published weights carry
UPSTREAM_SHAPES = {
    "netcnnaud.0.weight": (64, 1, 3, 3), "netcnnaud.4.weight": (192, 64, 3, 3),
    "netcnnaud.18.weight": (512, 256, 5, 4), "netcnnaud.19.running_var": (512,),
    "netfcaud.0.weight": (512, 512), "netfcaud.3.weight": (1024, 512),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7), "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.18.weight": (512, 256, 1, 6, 6), "netfclip.1.running_mean": (512,), "netfclip.3.bias": (1024,),
}


def test_syncnet_keeps_syncnet_pythons_layout_and_feature_sizes():
    net = SyncNet().eval()
    state = net.state_dict()
    for key, shape in UPSTREAM_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    with torch.no_grad():
        assert net.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)
        assert net.forward_aud(torch.randn(3, 1, 13, 20)).shape == (3, 1024)


def test_a_weight_file_loads_by_name_and_a_foreign_one_is_refused(tmp_path):
    torch.manual_seed(0)
    net = SyncNet().eval()
    torch.save(net.state_dict(), tmp_path / "syncnet_v2.model")
    loaded = load_syncnet(str(tmp_path / "syncnet_v2.model"))
    x = torch.randn(2, 1, 13, 20)
    torch.testing.assert_close(loaded.forward_aud(x), net.forward_aud(x))
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith("netfclip")}, tmp_path / "bad.model")
    with pytest.raises(ValueError, match="netfclip.0.weight missing"):
        load_syncnet(str(tmp_path / "bad.model"))


@pytest.mark.parametrize("delay", [0, 3, -2])
def test_the_offset_search_finds_a_known_delay_and_is_confident_only_when_in_sync(delay):
    g = torch.Generator().manual_seed(0)
    video = torch.randn(60, 16, generator=g)
    audio = torch.roll(video, delay, dims=0) + 0.05 * torch.randn(60, 16, generator=g)  # audio[t] = video[t - delay]
    s = score_features(video, audio, vshift=6)
    assert s.offset == -delay   # syncnet_python's sign: negative when the audio lags the video
    assert s.distance < 0.5 and s.confidence > 3.0
    noise = score_features(video, torch.randn(60, 16, generator=g), vshift=6)
    assert noise.confidence < 0.5 * s.confidence and noise.distance > 2 * s.distance


def test_crops_follow_the_face_box_in_bgr_at_224_and_pad_beyond_the_frame():
    frames = np.zeros((3, 120, 160, 3), np.uint8)
    frames[:, 40:80, 60:100] = (255, 0, 0)                 # a red face, RGB
    crops = face_crops(frames, np.tile([60, 40, 100, 80], (3, 1)))
    assert crops.shape == (3, 3, 224, 224) and crops.dtype == np.float32
    centre = crops[0, :, 60, 112]                          # the box centre sits above the crop's centre
    assert centre[2] == 255 and centre[0] == 0             # BGR: red in the last channel
    edge = face_crops(frames, np.tile([0, 0, 40, 40], (3, 1)))
    assert (edge[0, :, 0, 0] == 110).all()                 # beyond the frame: syncnet_python's grey


def test_mfcc_is_13_coefficients_at_100_hz():
    assert mfcc(np.zeros(16000, np.float32) + 1e-3).shape == (13, 99)


def test_no_judge_a_wrong_kind_or_missing_weights_are_reasons_or_config_errors(tmp_path):
    none = choose_sync(Params())
    assert none.judge is None and none.reason == NO_JUDGE and "eval.sync_judge" in NO_JUDGE
    with pytest.raises(ConfigError, match="resemblyzer-ge2e is a speaker_encoder, not a sync_judge"):
        choose_sync(_params(tmp_path, "resemblyzer-ge2e"))
    with pytest.raises(ConfigError, match="nope is not a pretrained component"):
        choose_sync(_params(tmp_path, "nope"))
    absent = choose_sync(_params(tmp_path, "syncnet-v2"))
    assert absent.judge is None and "syncnet-v2 but its weights are not available" in absent.reason


def _params(tmp_path, judge: str) -> Params:
    return Params.model_validate({"eval": {"sync_judge": judge}, "pretrained": {"cache_dir": str(tmp_path / "cache")}})


def test_an_evaluation_scores_every_variant_against_the_clips_real_video(tmp_path):
    """A pulled SyncNet (weights of the real architecture, values ours) judges a real mp4: rows
    for every variant, and a clip whose video is gone is left out, not fatal."""
    torch.manual_seed(0)
    torch.save(SyncNet().state_dict(), tmp_path / "syncnet_v2.model")
    params = _params(tmp_path, "syncnet-v2")
    pull("syncnet-v2", source=tmp_path / "syncnet_v2.model", params=params)
    choice = choose_sync(params)
    assert isinstance(choice.judge, SyncJudge) and choice.reason is None
    sample = write_talking_clip(tmp_path / "a.mp4", n_frames=30)
    clips = [Clip(key=k, speaker="s", audio=sample.audio, mel=np.zeros((80, 120)), units=np.zeros(60, int),
                  mouth=sample.openings, transcript=None, emotion=None) for k in ("c/s/a", "c/s/gone")]
    metas = {"c/s/a": {"source": {"video_path": str(sample.path)}},
             "c/s/gone": {"source": {"video_path": str(tmp_path / "gone.mp4")}}}
    silent = np.zeros_like(sample.audio)
    rendered = {"ground_truth": [Rendered(sample.audio, np.zeros(1), None)] * 2,
                "full": [Rendered(silent + 1e-4 * np.random.default_rng(0).standard_normal(len(silent)),
                                  np.zeros(1), None)] * 2}
    rows, reason = lse_rows(choice, clips, rendered, metas, params)
    assert reason is None and set(rows) == {"ground_truth", "full"}
    for row in rows.values():
        assert set(row) == {"lse_c", "lse_d"} and all(np.isfinite(list(row.values())))
        assert row["lse_c"] >= 0 and row["lse_d"] > 0
    assert rows["full"] != rows["ground_truth"]           # the audio is what is judged
    none, why = lse_rows(choice, clips[1:], {"full": rendered["full"][1:]}, metas, params)
    assert none == {} and "could read none of the 1 test clips' videos" in why and "gone.mp4" in why
