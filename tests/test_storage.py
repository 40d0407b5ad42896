"""Storage helpers on local paths and on S3 (moto's server on loopback, real HTTP), and shards
written to / read from s3:// through WebDataset's gopen and the training loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import webdataset as wds
from shards_support import make_record, moto_s3, record_stats

from imagintalk import PIPELINE_VERSION, storage
from imagintalk.config import LoaderConfig, ShardConfig, StorageConfig
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.data import make_loader
from imagintalk.shards import build_index, encode_record, plan_shards, read_index, read_sidecar, write_shard
from imagintalk.shards.index import write_index

VERSIONS = {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": "t", "codec_version": "c"}


@pytest.fixture(scope="module")
def bucket():
    with moto_s3() as url:
        yield url


def test_local_staged_file_publishes_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "d" / "x.bin"
    with pytest.raises(RuntimeError):
        with storage.staged_file(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    storage.write_text(target, "done")
    assert storage.read_text(target) == "done" and storage.exists(target)
    assert storage.glob(str(tmp_path / "d" / "*.bin")) == [str(target)]
    assert storage.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    assert storage.join("s3://b/p/", "a", "b") == "s3://b/p/a/b"


def test_endpoint_comes_from_config_before_environment(monkeypatch):
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", "http://env:1")
    assert storage.storage_options("s3://b/k")["endpoint_url"] == "http://env:1"
    cfg = StorageConfig(endpoint_url="http://cfg:2")
    assert storage.storage_options("s3://b/k", cfg)["endpoint_url"] == "http://cfg:2"
    assert storage.storage_options("/local/path", cfg) == {}


def test_s3_objects_write_read_list_and_remove(bucket):
    url = f"{bucket}/misc/a.json"
    storage.write_text(url, json.dumps({"a": 1}))
    assert storage.exists(url) and json.loads(storage.read_text(url)) == {"a": 1}
    assert storage.glob(f"{bucket}/misc/*.json") == [url]
    with pytest.raises(RuntimeError):
        with storage.staged_file(f"{bucket}/misc/b.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not storage.exists(f"{bucket}/misc/b.json")
    storage.remove(url)
    assert not storage.exists(url)


def test_shards_written_to_s3_read_back_by_webdataset_and_loader(bucket, tmp_path):
    rng = np.random.default_rng(5)
    recs = [make_record(f"c/s/{i}", 5 + i, rng) for i in range(4)]
    rows = [ManifestRow(r.clip_id, "c", "s", "train", "x", None, None, None, None, 1.0, 25.0, 16000, "0" * 64)
            for r in recs]
    root = f"{bucket}/ds1"
    sidecars = []
    for spec in plan_shards(rows, 2, {}):
        mine = [r for r in recs if r.clip_id in spec.clip_ids]
        args = ([encode_record(r) for r in mine], [record_stats(r) for r in mine], [], VERSIONS, ShardConfig())
        sidecars.append(write_shard(root, spec, *args))
        local = write_shard(str(tmp_path), spec, *args)
        assert local["sha256"] == sidecars[-1]["sha256"]  # same bytes on S3 and on disk
        assert read_sidecar(root, spec) == sidecars[-1]
    write_index(root, build_index(sidecars, VERSIONS, "ph"), [])
    assert read_index(root)["n_samples"] == 4

    plain = list(wds.WebDataset(f"{root}/c/train/train-000001.tar", shardshuffle=False))
    assert sorted(s["__key__"] for s in plain) == ["c/s/2", "c/s/3"]
    keys = [k for b in make_loader(root, "train", True, LoaderConfig(batch_size=3)) for k in b["keys"]]
    assert sorted(keys) == [r.clip_id for r in recs]
