"""End to end on real media: talking-face clips -> manifest -> real shards -> audits pass with the
default params; a real shard tar cut short then fails the shard audit naming its lost clips.

Slow (dlib face tracking, tokenizer fitting): the fast tests in test_audit_manifest.py and
test_audit_shards.py cover every expectation on hand-written tables.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sample_media import write_talking_clip
from shards_support import fit_tokenizers_beside
from typer.testing import CliRunner

from imagintalk.config import CodecConfig, Params, TokenizerConfig
from imagintalk.corpora.manifest import ManifestRow, write_manifest
from pipelines.audit import audit_target
from pipelines.cli import app
from pipelines.shard import shard_manifest

# 48 frames = 30720 samples = 30 AAC frames of 1024: no encoder padding, so the clips' audio and
# video lengths agree (see the audit report: 50-frame clips decode 0.048 s long and are quarantined).
N_FRAMES = 48
CLIPS = [("s1", "train", "astronaut", "neutral", "set blue at a one now"),
         ("s1", "train", "astronaut", "happy", "place red by g two soon"),
         ("s2", "val", "grace_hopper", "neutral", "bin green in h three again"),
         ("s3", "test", "grace_hopper", "happy", "lay white with j four please")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("audit_e2e")
    rows = []
    for i, (speaker, split, photo, emotion, text) in enumerate(CLIPS):
        path = root / "raw" / speaker / f"c{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_talking_clip(path, photo, text=text, n_frames=N_FRAMES, seed=i)
        rows.append(ManifestRow(f"synthtalk/{speaker}/c{i}", "synthtalk", speaker, split, str(path), None, text,
                                emotion, 0.5, N_FRAMES / 25, 25.0, 16000,
                                hashlib.sha256(path.read_bytes()).hexdigest()))
    manifest = write_manifest(rows, root / "manifest.parquet")
    shards = root / "shards"
    # four clips are too few frames for the default K=200 units / 256 codes; the levels (which
    # the audit checks against the default params) stay as they are
    small = Params(tokenizer=TokenizerConfig(k=16), codec=CodecConfig(codebook_size=16))
    fit_tokenizers_beside(manifest, small)
    summary = shard_manifest(manifest, str(shards), workers=1, params=small)
    assert summary.clips_ok == len(CLIPS), summary.summary_line()
    return manifest, shards


@pytest.mark.slow
def test_real_manifest_and_shards_pass_and_a_cut_tar_fails_naming_its_clips(corpus, tmp_path):
    manifest, shards = corpus
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    runner = CliRunner()
    for target, report in ((manifest, tmp_path / "m"), (shards, tmp_path / "s")):
        res = runner.invoke(app, ["audit", str(target), "--report", str(report), "--params", str(params_file)])
        assert res.exit_code == 0, res.output
        assert (report / "data_docs" / "index.html").exists()
        assert json.loads((report / "result.json").read_text())["passed"] is True

    tar = shards / "synthtalk" / "train" / "train-000000.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    result = audit_target(str(shards), None, Params())
    assert not result.passed
    failed = {o.id: o for o in result.blocking_failures}
    assert set(failed) == {"shards.tar_complete", "shards.tar_sha256"}
    assert "synthtalk/s1/c1" in failed["shards.tar_complete"].offenders[0].detail
