"""The training loader: decoding, crops, padding masks, shuffling and splitting across workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shards_support import make_record, record_stats

from imagintalk import PIPELINE_VERSION
from imagintalk.config import LoaderConfig, ShardConfig
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.data import UNKNOWN_EMOTION, make_loader
from imagintalk.emotions import EMOTION_INDEX
from imagintalk.errors import ConfigError, DataError
from imagintalk.shards import build_index, encode_record, plan_shards, write_shard
from imagintalk.shards.index import write_index

VERSIONS = {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": "t", "codec_version": "c"}
LENGTHS = [6, 9, 4, 7, 5, 8, 3]


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory):
    """7 train clips of different lengths over 3 shards, 2 val clips in 1 shard, with an index."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(1)
    recs = [make_record(f"c/s{i % 3}/{i:02d}", n, rng, emotion=None if i == 2 else "sad",
                        per_frame_probs=(i == 3)) for i, n in enumerate(LENGTHS)]
    recs += [make_record(f"c/v/{i}", 5, rng, split="val") for i in range(2)]
    rows = [ManifestRow(r.clip_id, "c", r.clip_id.split("/")[1], r.meta["split"], "x", None, None, None,
                        None, 1.0, 25.0, 16000, "0" * 64) for r in recs]
    sidecars = []
    for spec in plan_shards(rows, 3, {}):
        mine = [r for r in recs if r.clip_id in spec.clip_ids]
        sidecars.append(write_shard(str(root), spec, [encode_record(r) for r in mine],
                                    [record_stats(r, spec.split) for r in mine], [], VERSIONS, ShardConfig()))
    write_index(str(root), build_index(sidecars, VERSIONS, "ph"), [])
    return str(root), {r.clip_id: r for r in recs}


def _all(loader):
    return list(iter(loader))


def test_eval_batches_are_centre_cropped_padded_and_masked(shard_root):
    root, recs = shard_root
    batches = _all(make_loader(root, "train", False, LoaderConfig(batch_size=4)))
    assert [len(b["keys"]) for b in batches] == [4, 3]
    assert [k for b in batches for k in b["keys"]] == sorted(k for k in recs if "/v/" not in k)
    b = batches[0]
    t = max(recs[k].n_frames for k in b["keys"])
    assert b["lips"].shape == (4, t, 88, 88) and b["lips"].dtype == torch.uint8
    assert b["units"].shape == (4, 2 * t) and b["codes"].shape == (4, 3, 2 * t)
    assert b["mel"].shape == (4, 80, 4 * t) and b["identity"].shape == (4, 128)
    assert b["speaker"].shape == (4, 256) and b["speaker"].dtype == torch.float32
    assert b["face"].shape == (4, 3, 150, 150) and b["emotion_frames"].shape == (4, t)
    for i, key in enumerate(b["keys"]):
        rec, n = recs[key], recs[key].n_frames
        assert b["lengths"][i] == n
        assert b["lip_mask"][i].sum() == n and b["lip_mask"][i, :n].all()
        assert b["unit_mask"][i].sum() == 2 * n and b["mel_mask"][i].sum() == 4 * n
        np.testing.assert_array_equal(b["lips"][i, :n].numpy(), rec.lips[:, 4:92, 4:92])
        assert (b["lips"][i, n:] == 0).all() and (b["units"][i, 2 * n:] == 0).all()
        np.testing.assert_array_equal(b["units"][i, :2 * n].numpy(), rec.units)
        np.testing.assert_array_equal(b["codes"][i, :, :2 * n].numpy(), rec.codes)
        np.testing.assert_allclose(b["mel"][i, :, :4 * n].numpy(), rec.mel.astype(np.float32))
        np.testing.assert_allclose(b["identity"][i].numpy(), rec.identity)
        np.testing.assert_allclose(b["speaker"][i].numpy(), rec.speaker)
        np.testing.assert_allclose(b["mouth"][i, :n].numpy(), rec.mouth)


@pytest.mark.parametrize("fields", [["landmarks"], ["units"], ["lips", "units"], ["mel", "codes"], []])
def test_a_stage_gets_only_the_fields_it_asks_for_with_the_same_values_and_masks(shard_root, fields):
    """LoaderConfig.fields: the rest is neither decoded nor in the batch; what is there is what the
    full batch holds, and the lengths and masks do not depend on the lips being read."""
    root, _ = shard_root
    full = _all(make_loader(root, "train", False, LoaderConfig(batch_size=4)))
    only = _all(make_loader(root, "train", False, LoaderConfig(batch_size=4, fields=fields)))
    always = {"keys", "lengths", "lip_mask", "mouth", "emotion", "intensity", "emotion_frames"}
    derived = {"landmarks": {"face_found"}, "units": {"unit_mask"}, "mel": {"mel_mask"}}
    for a, b in zip(full, only, strict=True):
        expected = always | set(fields) | {d for f in fields for d in derived.get(f, ())}
        assert set(b) == expected
        assert a["keys"] == b["keys"]
        for k in expected - {"keys"}:
            torch.testing.assert_close(b[k], a[k])


def test_a_field_outside_the_vocabulary_is_a_config_error():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="fields"):
        LoaderConfig(fields=["lips", "audio_of_the_moon"])


def test_emotion_index_is_clip_label_per_frame_probs_or_unknown(shard_root):
    root, recs = shard_root
    got = {}
    for b in _all(make_loader(root, "train", False, LoaderConfig(batch_size=8))):
        for i, k in enumerate(b["keys"]):
            got[k] = (int(b["emotion"][i]), b["emotion_frames"][i, :int(b["lengths"][i])].numpy())
    assert got["c/s0/00"][0] == EMOTION_INDEX["sad"] and (got["c/s0/00"][1] == EMOTION_INDEX["sad"]).all()
    assert got["c/s2/02"][0] == UNKNOWN_EMOTION and (got["c/s2/02"][1] == UNKNOWN_EMOTION).all()
    probs = np.asarray(recs["c/s0/03"].emotion["probs"])
    np.testing.assert_array_equal(got["c/s0/03"][1], probs.argmax(axis=1))


def test_train_crops_are_random_88_windows_and_order_is_shuffled(shard_root):
    root, recs = shard_root
    cfg = LoaderConfig(batch_size=2, shuffle_buffer=8, seed=3)
    keys, offsets = [], set()
    for b in _all(make_loader(root, "train", True, cfg)):
        for i, key in enumerate(b["keys"]):
            keys.append(key)
            crop = b["lips"][i, :recs[key].n_frames].numpy()
            found = [(y, x) for y in range(9) for x in range(9)
                     if np.array_equal(recs[key].lips[:, y:y + 88, x:x + 88], crop)]
            assert len(found) == 1, key
            offsets.add(found[0])
    assert sorted(keys) == sorted(k for k in recs if "/v/" not in k)
    assert keys != sorted(keys)
    assert len(offsets) > 1
    again = [k for b in _all(make_loader(root, "train", True, cfg)) for k in b["keys"]]
    assert again == keys  # same seed, same order


@pytest.mark.parametrize("num_shards", [2, 5])  # 2 ≤ 3 shards: whole shards; 5 > 3: every 5th sample
def test_workers_split_the_data_disjointly_and_completely(shard_root, num_shards):
    root, recs = shard_root
    parts = [[k for b in _all(make_loader(root, "train", False, LoaderConfig(batch_size=4), s, num_shards))
              for k in b["keys"]] for s in range(num_shards)]
    flat = [k for p in parts for k in p]
    assert sorted(flat) == sorted(k for k in recs if "/v/" not in k) and len(set(flat)) == len(flat)
    assert all(parts)


def test_dataloader_workers_and_audio_and_explicit_urls(shard_root, tmp_path):
    root, recs = shard_root
    cfg = LoaderConfig(batch_size=2, num_workers=2, audio=True)
    batches = _all(make_loader(root, "train", False, cfg))
    assert sorted(k for b in batches for k in b["keys"]) == sorted(k for k in recs if "/v/" not in k)
    b = batches[0]
    t = b["lips"].shape[1]
    assert b["audio"].shape == (2, 640 * t) and b["audio_mask"][0].sum() == 640 * b["lengths"][0]
    val = _all(make_loader(f"{root}/c/val/val-000000.tar", "val", False, LoaderConfig()))
    assert sorted(val[0]["keys"]) == ["c/v/0", "c/v/1"]


def test_unknown_split_and_bad_worker_index_are_clear_errors(shard_root, tmp_path):
    root, _ = shard_root
    with pytest.raises(DataError, match="no split 'test'"):
        make_loader(root, "test", False, LoaderConfig())
    with pytest.raises(DataError, match="no shards"):
        make_loader(str(tmp_path), "train", False, LoaderConfig())
    with pytest.raises(ConfigError):
        make_loader(root, "train", True, LoaderConfig(), shard_index=2, num_shards=2)


def test_shard_whose_clips_were_all_quarantined_is_not_handed_to_a_worker(tmp_path):
    rng = np.random.default_rng(2)
    recs = [make_record(f"c/s/{i}", 4, rng) for i in range(4)]
    rows = [ManifestRow(r.clip_id, "c", "s", "train", "x", None, None, None, None, 1.0, 25.0, 16000, "0" * 64)
            for r in recs]
    sidecars = []
    for spec in plan_shards(rows, 2, {}):
        mine = [r for r in recs if r.clip_id in spec.clip_ids and spec.number == 1]
        bad = [] if mine else [{"clip_id": c, "kind": "face", "reason": "no face"} for c in spec.clip_ids]
        sidecars.append(write_shard(str(tmp_path), spec, [encode_record(r) for r in mine],
                                    [record_stats(r) for r in mine], bad, VERSIONS, ShardConfig()))
    write_index(str(tmp_path), build_index(sidecars, VERSIONS, "ph"), [])
    parts = [[k for b in make_loader(str(tmp_path), "train", False, LoaderConfig(), s, 2) for k in b["keys"]]
             for s in range(2)]
    assert parts == [["c/s/2"], ["c/s/3"]]   # one non-empty shard: split by sample, both get work


def test_sample_of_an_older_pipeline_without_speaker_embedding_is_a_clear_error():
    from imagintalk.data.loader import CropLips

    sample = encode_record(make_record("c/s0/00", 4, np.random.default_rng(0)))
    del sample["speaker.npy"]
    with pytest.raises(DataError, match=r"c/s0/00.*no speaker\.npy.*shard the corpus again"):
        CropLips(88, False, 0, False)(sample)


def test_a_speaker_subset_keeps_only_those_speakers_clips(shard_root):
    """A training stage's share of the train split (the aligner's fit speakers, the detector's
    held-out ones) reads only those speakers' clips, and every one of them."""
    root, recs = shard_root
    keys = [k for b in _all(make_loader(root, "train", False, LoaderConfig(batch_size=4, speakers=["s0", "s2"])))
            for k in b["keys"]]
    assert sorted(keys) == sorted(k for k in recs if k.split("/")[1] in ("s0", "s2"))


def test_a_speaker_subset_feeds_every_worker_even_from_one_shard(shard_root):
    """The error detector's held-out speakers may all sit in one shard: each of 2 workers must
    still get its share of their clips (dealt out by sample), together all of them once."""
    root, recs = shard_root
    cfg = LoaderConfig(batch_size=1, speakers=["s1"])
    parts = [[k for b in _all(make_loader(root, "train", False, cfg, shard_index=i, num_shards=2)) for k in b["keys"]]
             for i in range(2)]
    assert all(parts) and sorted(parts[0] + parts[1]) == sorted(k for k in recs if k.split("/")[1] == "s1")


def _crops(sample, **aug):
    from imagintalk.data.loader import CropLips

    return CropLips(88, True, 5, False, ("lips",), **aug)(sample)["lips"]


def test_the_aligners_augmentation_mirrors_and_masks_only_training_crops():
    """auto_avsr's transform (LoaderConfig.flip_prob, time_mask_frames): the same random crop,
    mirrored; spans replaced by the clip's mean frame, at most time_mask_frames per second; and
    evaluation crops untouched whatever the settings."""
    from imagintalk.data.loader import CropLips

    rec = make_record("c/s0/00", 60, np.random.default_rng(2))
    sample = encode_record(rec)
    plain = _crops(sample)
    assert np.array_equal(_crops(sample, flip_prob=1.0), plain[:, :, ::-1])
    assert np.array_equal(_crops(sample, flip_prob=0.0), plain)
    masked = _crops(sample, time_mask_frames=10)
    changed = [t for t in range(60) if not np.array_equal(masked[t], plain[t])]
    mean = plain.mean(axis=0).round().astype(np.uint8)
    assert changed and all(np.array_equal(masked[t], mean) for t in changed)
    assert len(changed) <= 10 * 2  # 60 frames: two spans of at most 10
    assert np.array_equal(_crops(sample), plain)  # the decoded record itself was not written to
    evaluated = CropLips(88, False, 5, False, ("lips",), flip_prob=1.0, time_mask_frames=10)(sample)["lips"]
    assert np.array_equal(evaluated, rec.lips[:, 4:92, 4:92])


def test_only_the_lip_aligner_trains_on_augmented_crops(shard_root):
    from imagintalk.config import Params
    from imagintalk.train.graph import STAGES

    params = Params().model_copy(update={"lip_aligner": Params().lip_aligner.model_copy(
        update={"flip_prob": 0.5, "time_mask_frames": 10})})
    aligner = STAGES["lip_aligner"].loader_config(params)
    assert (aligner.flip_prob, aligner.time_mask_frames) == (0.5, 10)
    assert STAGES["lip_aligner"].loader_config(params, train=False).flip_prob == 0.0
    for name in ("error_detector", "style_dit", "unit_bert"):
        assert (STAGES[name].loader_config(params).flip_prob, STAGES[name].loader_config(params).time_mask_frames) \
            == (0.0, 0)
    root, recs = shard_root  # and the loader runs with it: every training clip, lips of the usual shape
    keys = [k for b in _all(make_loader(root, "train", True, aligner.model_copy(update={"batch_size": 4})))
            for k in b["keys"]]
    assert sorted(keys) == sorted(k for k in recs if "/v/" not in k)
