"""The sample record, the shard writer and the dataset index (no preprocessing involved)."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import webdataset as wds
from shards_support import make_record, record_stats

from imagintalk import PIPELINE_VERSION
from imagintalk.config import ShardConfig
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.errors import CorpusLayoutError, MediaError
from imagintalk.shards import (
    FIELDS,
    build_index,
    clip_id_to_key,
    decode_record,
    encode_record,
    key_to_clip_id,
    plan_shards,
    read_sidecar,
    write_shard,
)
from imagintalk.shards.writer import remove_stale_shards

VERSIONS = {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": "tok1", "codec_version": "codec1"}


def _row(clip_id: str, split: str = "train") -> ManifestRow:
    corpus, speaker, _ = clip_id.split("/")
    return ManifestRow(clip_id, corpus, speaker, split, f"/x/{clip_id}.mp4", None, "t", "happy", 0.5,
                       1.0, 25.0, 16000, "0" * 64)


def _write(root, recs, spec, cfg=ShardConfig()):
    return write_shard(str(root), spec, [encode_record(r) for r in recs], [record_stats(r) for r in recs],
                       [], VERSIONS, cfg)


def test_record_round_trips_every_field_through_webdataset_with_documented_shapes(tmp_path, rng):
    recs = [make_record("synthtalk/spk.1/clip.a.b", 7, rng, levels=4, per_frame_probs=True),
            make_record("synthtalk/spk2/c100%", 5, rng, emotion=None)]
    spec = plan_shards([_row(r.clip_id) for r in recs], 8, {"v": 1})[0]
    _write(tmp_path, recs, spec)
    tar = tmp_path / spec.tar_path
    samples = list(wds.WebDataset(str(tar), shardshuffle=False))
    assert len(samples) == 2
    by_id = {key_to_clip_id(s["__key__"]): s for s in samples}
    assert set(by_id) == {r.clip_id for r in recs}   # dots and % in ids survive the key split
    for rec in recs:
        sample = by_id[rec.clip_id]
        assert set(FIELDS) <= set(sample)
        back = decode_record(sample)
        t = rec.n_frames
        assert back.lips.dtype == np.uint8 and back.lips.shape == (t, 96, 96)
        np.testing.assert_array_equal(back.lips, rec.lips)
        assert back.identity.dtype == np.float32 and back.identity.shape == (128,)
        assert back.mel.dtype == np.float16 and back.mel.shape == (80, 4 * t)
        assert back.units.dtype == np.int16 and back.units.shape == (2 * t,)
        assert back.codes.dtype == np.int16 and back.codes.shape == (4 if rec is recs[0] else 3, 2 * t)
        assert back.mouth.dtype == np.float32 and back.mouth.shape == (t,)
        assert back.speaker.dtype == np.float32 and back.speaker.shape == (256,)
        np.testing.assert_array_equal(back.speaker, rec.speaker)
        np.testing.assert_array_equal(back.codes, rec.codes)
        assert back.face.shape == (150, 150, 3) and back.face.dtype == np.uint8
        assert np.abs(back.face.astype(int) - rec.face).mean() < 3  # JPEG is lossy, not random
        assert back.sample_rate == 16000 and back.audio.shape == (640 * t,)
        np.testing.assert_allclose(back.audio, rec.audio, atol=1e-4)  # 16-bit FLAC
        assert back.emotion == json.loads(json.dumps(rec.emotion))
        assert back.meta["clip_id"] == rec.clip_id and back.meta["pipeline_version"] == PIPELINE_VERSION


def test_key_escaping_is_reversible_and_refuses_unsafe_ids():
    for cid in ["a/b/c", "c.1/s.2/x.y.z", "a/b/50%.mp4", "a/b/%2E"]:
        assert key_to_clip_id(clip_id_to_key(cid)) == cid
        assert "." not in clip_id_to_key(cid)
    for bad in ["/abs/x/y", "a/../b", "a//b"]:
        with pytest.raises(CorpusLayoutError):
            clip_id_to_key(bad)


def test_record_with_wrong_token_length_is_refused(rng):
    rec = make_record("c/s/x", 6, rng)
    rec.units = rec.units[:-1]
    with pytest.raises(MediaError, match="units.npy"):
        encode_record(rec)


def test_same_samples_give_byte_identical_shards_in_any_input_order(tmp_path, rng):
    recs = [make_record(f"c/s/{i:02d}", 4, rng) for i in range(5)]
    spec = plan_shards([_row(r.clip_id) for r in recs], 8, {})[0]
    a = _write(tmp_path / "a", recs, spec)
    b = _write(tmp_path / "b", list(reversed(recs)), spec)
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a" / spec.tar_path).read_bytes() == (tmp_path / "b" / spec.tar_path).read_bytes()
    with tarfile.open(tmp_path / "a" / spec.tar_path) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}


def test_interrupted_shard_write_publishes_nothing(tmp_path, rng, monkeypatch):
    recs = [make_record(f"c/s/{i}", 4, rng) for i in range(3)]
    spec = plan_shards([_row(r.clip_id) for r in recs], 8, {})[0]
    real_write = wds.TarWriter.write
    calls = []

    def dies_on_second_sample(self, obj):
        calls.append(obj["__key__"])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-write")
        return real_write(self, obj)

    monkeypatch.setattr(wds.TarWriter, "write", dies_on_second_sample)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, recs, spec)
    assert len(calls) == 2                          # one sample was already in the staged tar
    shard_dir = tmp_path / spec.tar_path.rsplit("/", 1)[0]
    assert list(shard_dir.iterdir()) == []          # no tar, no sidecar, no temp file
    assert read_sidecar(str(tmp_path), spec) is None
    monkeypatch.setattr(wds.TarWriter, "write", real_write)
    assert _write(tmp_path, recs, spec)["n_samples"] == 3   # a rerun completes it


def test_sidecar_is_trusted_only_when_tar_exists_and_inputs_match(tmp_path, rng):
    recs = [make_record(f"c/s/{i}", 4, rng) for i in range(3)]
    rows = [_row(r.clip_id) for r in recs]
    spec = plan_shards(rows, 8, {"params_hash": "p1"})[0]
    sidecar = _write(tmp_path, recs, spec)
    assert read_sidecar(str(tmp_path), spec) == json.loads((tmp_path / spec.stats_path).read_text())
    assert sidecar["n_samples"] == 3 and [s["key"] for s in sidecar["samples"]] == ["c/s/0", "c/s/1", "c/s/2"]
    changed = plan_shards(rows, 8, {"params_hash": "p2"})[0]
    assert changed.tar_path == spec.tar_path and read_sidecar(str(tmp_path), changed) is None
    (tmp_path / spec.tar_path).unlink()
    assert read_sidecar(str(tmp_path), spec) is None


def test_plan_cuts_each_corpus_split_into_numbered_shards_sorted_by_clip():
    rows = [_row(f"b/s/{i}", "train") for i in (3, 1, 2)] + [_row("a/t/9", "val"), _row("b/u/0", "test")]
    specs = plan_shards(rows, 2, {})
    assert [s.tar_path for s in specs] == [
        "a/val/val-000000.tar", "b/test/test-000000.tar", "b/train/train-000000.tar", "b/train/train-000001.tar"]
    assert specs[2].clip_ids == ("b/s/1", "b/s/2") and specs[3].clip_ids == ("b/s/3",)
    assert len({s.inputs_hash for s in specs}) == 4


def test_index_counts_hours_speakers_and_content_hash_follow_the_shards(tmp_path, rng):
    recs = [make_record(f"c/s{i % 2}/{i}", 25, rng) for i in range(4)]
    specs = plan_shards([_row(r.clip_id) for r in recs], 3, {})
    sidecars = [_write(tmp_path, [r for r in recs if r.clip_id in s.clip_ids], s) for s in specs]
    index = build_index(sidecars, VERSIONS, "ph")
    assert index["n_samples"] == 4 and index["splits"]["train"]["speakers"] == ["s0", "s1"]
    assert index["hours"] == pytest.approx(4 * 1.0 / 3600, abs=1e-6)
    assert [s["path"] for s in index["shards"]] == [s.tar_path for s in specs]
    assert build_index(list(reversed(sidecars)), VERSIONS, "ph") == index
    assert build_index(sidecars, {**VERSIONS, "codec_version": "codec2"}, "ph")["content_hash"] != \
        index["content_hash"]
    altered = [dict(sidecars[0], sha256="f" * 64), *sidecars[1:]]
    assert build_index(altered, VERSIONS, "ph")["content_hash"] != index["content_hash"]


def test_replanning_with_bigger_shards_removes_the_stale_ones(tmp_path, rng):
    recs = [make_record(f"c/s/{i}", 4, rng) for i in range(4)]
    rows = [_row(r.clip_id) for r in recs]
    for spec in plan_shards(rows, 2, {}):
        _write(tmp_path, [r for r in recs if r.clip_id in spec.clip_ids], spec)
    bigger = plan_shards(rows, 4, {})
    _write(tmp_path, recs, bigger[0])
    removed = remove_stale_shards(str(tmp_path), bigger)
    assert removed == ["c/train/train-000001.stats.json", "c/train/train-000001.tar"]
    assert sorted(p.name for p in (tmp_path / "c/train").iterdir()) == [
        "train-000000.stats.json", "train-000000.tar"]
