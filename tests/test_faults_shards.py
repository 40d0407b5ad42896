"""Hostile input and faults in the shard step (issue 14): every write and delete stays under the
output root, a run killed midway never leaves an index describing changed tars, leftover staging
files are cleaned, and bad arguments are one-line errors. Real files and a real SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from shards_support import (
    fit_tokenizers_beside,
    make_clip_manifest,
    make_record,
    record_stats,
    small_tokens_params_file,
)
from test_audit_manifest import clean_rows
from typer.testing import CliRunner

from imagintalk.config import Params, ShardConfig, load_params
from imagintalk.corpora.manifest import write_manifest
from imagintalk.errors import ConfigError, DataError
from imagintalk.shards import encode_record, plan_shards, read_index, write_shard
from imagintalk.shards.writer import ShardSpec, remove_stale_shards
from pipelines.cli import app
from pipelines.shard import shard_manifest

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "train").mkdir(parents=True)
    (victim / "train" / "train-000007.tar").write_bytes(b"precious")
    (victim / "notes.txt").write_text("keep me")
    return victim


def test_manifest_corpus_climbing_out_of_the_root_is_refused_and_nothing_is_written(tmp_path):
    victim = _victim(tmp_path)
    before = _tree(victim)
    rows = [replace(r, corpus="../../victim", clip_id=f"../../victim/{r.speaker}/x{i}")
            if i == 0 else r for i, r in enumerate(clean_rows())]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    out = tmp_path / "deep" / "a" / "root"
    (tmp_path / "params.yaml").write_text("{}\n")
    res = CliRunner().invoke(app, ["shard", str(manifest), "--out", str(out), "--params",
                                   str(tmp_path / "params.yaml")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    [line] = res.output.strip().splitlines()
    assert line.startswith(f"error: {manifest}: row 0") and "corpus '../../victim'" in line
    assert _tree(victim) == before and not (tmp_path / "deep").exists()


def test_writer_refuses_paths_that_leave_the_root_by_dotdot_or_symlink(tmp_path, rng):
    victim = _victim(tmp_path)
    before = _tree(victim)
    root = tmp_path / "root"
    root.mkdir()
    (root / "c").symlink_to(victim.parent)          # root/c/victim/... would land in tmp_path
    rec = make_record("c/s/0", 4, rng)
    sample, stats = [encode_record(rec)], [record_stats(rec)]
    sneaky = [ShardSpec("..", "train", 0, ("c/s/0",), "h"), ShardSpec("c", "victim", 0, ("c/s/0",), "h")]
    for spec in sneaky:
        with pytest.raises(ConfigError, match="output root"):
            write_shard(str(root), spec, sample, stats, [], {}, ShardConfig())
    with pytest.raises(ConfigError, match="output root"):
        remove_stale_shards(str(root), [ShardSpec("c", "victim", 0, ("c/s/0",), "h")])
    assert _tree(victim) == before and not (tmp_path / "train").exists()


def test_plan_refuses_an_unsafe_corpus_name_or_an_unknown_split(tmp_path):
    rows = clean_rows()
    for bad in (replace(rows[0], corpus="a/../../b"), replace(rows[0], split="dev")):
        with pytest.raises(DataError):
            plan_shards([bad, *rows[1:]], 4, {})


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    # code defaults: independent of edits to the repo's params.yaml
    return small_tokens_params_file(tmp_path_factory.mktemp("params"), Params(), k=4, levels=2, codebook_size=4,
                                    per_shard=1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, params_file):
    spec = [("s1", "c0", "train", "ok"), ("s1", "c1", "train", "ok"), ("s2", "c0", "train", "ok"),
            ("s3", "c0", "val", "ok")]
    path = make_clip_manifest(tmp_path_factory.mktemp("clips"), spec, n_frames=10, size=32)
    fit_tokenizers_beside(path, load_params(params_file))
    return path


def test_workers_zero_is_refused_not_replaced_by_the_default(manifest, params_file, tmp_path):
    res = CliRunner().invoke(app, ["shard", str(manifest), "--out", str(tmp_path / "o"), "--workers", "0",
                                   "--params", str(params_file)])
    assert res.exit_code == 1 and res.output.strip() == "error: --workers: must be >= 1, got 0"
    assert not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="must be a directory"):
        shard_manifest(manifest, str(tmp_path / "file"), params=load_params(params_file))
    assert (tmp_path / "file").read_text() == "x"


KILL_ON_SECOND_PUBLISH = """
import os, signal, sys
from imagintalk import storage
from imagintalk.config import load_params
from pipelines.shard import shard_manifest
real, calls = storage.publish_file, []
def publish(local, url, cfg=None):
    if str(url).endswith(".tar"):
        calls.append(url)
        if len(calls) == 2:   # the second shard is staged, not yet published: die like a kill -9
            os.kill(os.getpid(), signal.SIGKILL)
    real(local, url, cfg)
storage.publish_file = publish
shard_manifest(sys.argv[1], sys.argv[2], workers=1, params=load_params(sys.argv[3]))
"""


def test_rerun_killed_midway_leaves_no_stale_index_and_the_next_run_cleans_up(manifest, params_file, tmp_path):
    params = load_params(params_file)
    out = tmp_path / "root"
    first = shard_manifest(manifest, str(out), workers=1, params=params)
    old = read_index(str(out))
    assert old["content_hash"] == first.content_hash
    changed = tmp_path / "changed.yaml"   # a parameter that changes every shard's bytes
    raw = yaml.safe_load(params_file.read_text())
    raw["shards"]["jpeg_quality"] = 80
    changed.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILL_ON_SECOND_PUBLISH, str(manifest), str(out), str(changed)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "index.json").exists()           # invalidated before the first changed tar
    with pytest.raises(DataError, match="no dataset index"):
        read_index(str(out))
    leftovers = list(out.rglob(".*.tmp"))
    assert leftovers, "the kill should have left the staged second tar behind"
    again = shard_manifest(manifest, str(out), workers=1, params=load_params(changed))
    assert not list(out.rglob(".*.tmp")) and again.shards_written + again.shards_skipped == 4
    new = read_index(str(out))
    assert new["content_hash"] == again.content_hash and new["params_hash"] != old["params_hash"]
    tar = out / read_index(str(out))["shards"][0]["path"]
    tar.write_bytes(tar.read_bytes() + b"\0" * 512)    # a tar changed behind the index's back
    with pytest.raises(DataError, match="stale index: shard .* has"):
        read_index(str(out))
