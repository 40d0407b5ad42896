"""Object-store faults (issue 14): an unreachable or stalled S3 endpoint ends in one line
``error: s3://...: <reason>`` and exit 1 within the configured timeouts and retries, and a store
that goes away mid-run leaves nothing half-published (no index, no partial object)."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager

import pytest
import s3fs
import yaml
from shards_support import fit_tokenizers_beside, make_clip_manifest, moto_s3
from typer.testing import CliRunner

from imagintalk import storage
from imagintalk.config import Params, load_params
from imagintalk.errors import StorageError
from pipelines.cli import app
from pipelines.shard import shard_manifest

BOUNDS = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "max_attempts": 2}


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    p = Params()
    p = p.model_copy(update={
        "tokenizer": p.tokenizer.model_copy(update={"k": 4}),
        "codec": p.codec.model_copy(update={"levels": 2, "codebook_size": 4}),
        "shards": p.shards.model_copy(update={"samples_per_shard": 1}),
        "storage": p.storage.model_copy(update=BOUNDS),
    })
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(p.model_dump(mode="json")))
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, params_file):
    spec = [("s1", "c0", "train", "ok"), ("s1", "c1", "train", "ok"), ("s2", "c0", "val", "ok")]
    path = make_clip_manifest(tmp_path_factory.mktemp("clips"), spec, n_frames=10, size=32)
    fit_tokenizers_beside(path, load_params(params_file))
    return path


@contextmanager
def endpoint(url: str):
    saved = {k: os.environ.get(k) for k in ("FSSPEC_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({"FSSPEC_S3_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def stalled_endpoint():
    """A loopback port that accepts TCP connections (kernel backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["unreachable", "stalled"])
def test_bad_endpoint_is_a_bounded_one_line_error(manifest, params_file, kind):
    with stalled_endpoint() as stalled:
        url = stalled if kind == "stalled" else f"http://127.0.0.1:{_closed_port()}"
        with endpoint(url):
            started = time.monotonic()
            res = CliRunner().invoke(app, ["shard", str(manifest), "--out", "s3://bucket/root",
                                           "--params", str(params_file)])
            took = time.monotonic() - started
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    [line] = res.output.strip().splitlines()
    assert line.startswith("error: s3://bucket/root/")
    assert ("timed out" if kind == "stalled" else "cannot reach the object store") in line
    assert took < 60, f"{kind} endpoint took {took:.0f} s"   # 2 attempts x 1 s timeouts per call


def test_store_lost_mid_run_publishes_nothing_half_done(manifest, params_file, monkeypatch):
    params = load_params(params_file)
    real_publish, calls = storage.publish_file, []

    def publish(local, url, cfg=None):
        if str(url).endswith(".tar"):
            calls.append(url)
            if len(calls) == 2:   # the store goes away just as the second shard is uploaded
                os.environ["FSSPEC_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
                s3fs.S3FileSystem.clear_instance_cache()
        real_publish(local, url, cfg)

    with moto_s3() as bucket:
        live = os.environ["FSSPEC_S3_ENDPOINT_URL"]
        monkeypatch.setattr(storage, "publish_file", publish)
        with pytest.raises(StorageError, match=r"^s3://.*train-000001\.tar: cannot reach"):
            shard_manifest(manifest, f"{bucket}/root", workers=1, params=params)
        os.environ["FSSPEC_S3_ENDPOINT_URL"] = live
        s3fs.S3FileSystem.clear_instance_cache()
        names = [u.rsplit("/", 1)[-1] for u in storage.glob(f"{bucket}/root/**", params.storage)]
        assert "index.json" not in names and "train-000001.tar" not in names
        assert "train-000000.tar" in names and "train-000000.stats.json" in names   # whole or absent
        monkeypatch.setattr(storage, "publish_file", real_publish)
        again = shard_manifest(manifest, f"{bucket}/root", workers=1, params=params)
        assert again.shards_skipped == 1 and again.shards_written == 2
