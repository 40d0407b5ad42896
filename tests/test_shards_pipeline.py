"""`shard_manifest` end to end on real talking-face clips: every key read back at the documented
shapes, quarantine with reasons, determinism of the content hash, incremental reruns, s3:// on
moto, the Ray Data path, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import webdataset as wds
from shards_support import TALKING_SPEC, fit_tokenizers_beside, make_talking_manifest, moto_s3, small_tokens_params_file
from typer.testing import CliRunner

from imagintalk import storage
from imagintalk.config import load_params
from imagintalk.features.speaker import speaker_embedding
from imagintalk.shards import decode_record, read_index, read_quarantine
from pipelines.shard import shard_manifest

N_OK = sum(1 for s in TALKING_SPEC if s[4] == "ok")
N_BAD = len(TALKING_SPEC) - N_OK


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    """Small codebooks (the test corpus has a few hundred 50 Hz frames, not K=200's worth) and
    3 clips per shard, as a params.yaml the CLI can read too."""
    return small_tokens_params_file(tmp_path_factory.mktemp("params"), load_params(), k=8, levels=3, codebook_size=8,
                                    per_shard=3)


@pytest.fixture(scope="module")
def params(params_file):
    return load_params(params_file)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, params):
    path = make_talking_manifest(tmp_path_factory.mktemp("talking"))
    fit_tokenizers_beside(path, params)
    return path


@pytest.fixture(scope="module")
def first_run(manifest, params, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "root"
    return out, shard_manifest(manifest, str(out), workers=1, params=params)


def test_shards_hold_every_key_at_documented_shapes_and_bad_clips_are_quarantined(first_run, params):
    out, summary = first_run
    assert (summary.clips_ok, summary.quarantined, summary.clips_total) == (N_OK, N_BAD, len(TALKING_SPEC))
    assert not summary.used_ray and summary.shards_skipped == 0
    index = read_index(str(out))
    assert index["n_samples"] == N_OK and index["content_hash"] == summary.content_hash
    assert {k: v["n_samples"] for k, v in index["splits"].items()} == {"train": 4, "val": 1, "test": 1}
    assert index["splits"]["train"]["speakers"] == ["astro", "hopper"]
    assert index["hours"] == pytest.approx(N_OK * 1.0 / 3600, rel=1e-3)
    quarantine = {q["clip_id"]: q for q in read_quarantine(str(out))}
    assert set(quarantine) == {"synthtalk/astro/c2silent", "synthtalk/hopper/c3noface", "synthtalk/astro2/c4cut"}
    assert quarantine["synthtalk/astro/c2silent"]["kind"] == "audio"
    assert "silent" in quarantine["synthtalk/astro/c2silent"]["reason"]
    assert quarantine["synthtalk/hopper/c3noface"]["kind"] == "face"
    assert "mismatch" in quarantine["synthtalk/astro2/c4cut"]["reason"]

    urls = [str(out / p) for s in index["splits"].values() for p in s["shards"]]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        rec = decode_record(sample)
        seen[rec.clip_id] = rec
        t = rec.n_frames
        assert t == 25 and rec.lips.shape == (t, 96, 96) and rec.lips.dtype == np.uint8
        assert rec.face.shape == (150, 150, 3) and rec.identity.shape == (128,)
        assert rec.identity.dtype == np.float32 and np.isfinite(rec.identity).all()
        assert rec.mel.shape == (80, 4 * t) and rec.mel.dtype == np.float16
        assert rec.units.shape == (2 * t,) and rec.units.dtype == np.int16
        assert 0 <= rec.units.min() and rec.units.max() < 8
        assert rec.codes.shape == (3, 2 * t) and rec.codes.dtype == np.int16
        assert rec.audio.shape == (640 * t,) and rec.sample_rate == 16000 and np.abs(rec.audio).max() > 0.01
        assert rec.mouth.shape == (t,) and rec.mouth.dtype == np.float32
        # the GE2E speaker embedding of the clip's own audio (unit norm; FLAC keeps it to ~1e-3)
        assert rec.speaker.shape == (256,) and rec.speaker.dtype == np.float32
        assert float(rec.speaker @ speaker_embedding(rec.audio)) > 0.99
        assert rec.emotion["label"] == "happy" and rec.emotion["intensity"] == 0.5
        assert rec.meta["split"] in ("train", "val", "test") and rec.meta["transcript"]
        assert rec.meta["tokenizer_version"] == index["tokenizer_version"]
        assert len(rec.meta["source_sha256"]) == 64
    assert len(seen) == N_OK

    sidecar = json.loads((out / "synthtalk/train/train-000000.stats.json").read_text())
    assert sidecar["n_samples"] + len(sidecar["quarantined"]) == len(sidecar["input_keys"]) == 3
    for s in sidecar["samples"]:
        assert s["units_per_s"] == pytest.approx(50.0) and s["codes_shape"] == [3, 50]
        assert {"face_ratio", "lip_sharpness", "audio_rms", "silence_ratio", "av_mismatch_s"} <= set(s)
        assert s["speaker_norm"] == pytest.approx(1.0, abs=1e-3)
    assert "shard: 6 clips ok, 3 quarantined" in summary.summary_line()


def test_rerun_skips_complete_shards_and_redoes_only_a_missing_one(first_run, manifest, params):
    out, summary = first_run
    again = shard_manifest(manifest, str(out), workers=1, params=params)
    assert (again.shards_written, again.processed) == (0, 0)
    assert again.shards_skipped == summary.shards_written and again.content_hash == summary.content_hash
    (out / "synthtalk/train/train-000001.tar").unlink()
    redo = shard_manifest(manifest, str(out), workers=1, params=params)
    assert redo.shards_written == 1 and redo.processed == 3
    assert redo.content_hash == summary.content_hash and redo.quarantined == N_BAD


def test_same_manifest_params_and_seed_give_same_content_hash(first_run, manifest, params, tmp_path):
    out, summary = first_run
    other = shard_manifest(manifest, str(tmp_path / "b"), workers=1, params=params)
    assert other.content_hash == summary.content_hash
    a = (out / "synthtalk/train/train-000000.tar").read_bytes()
    assert (tmp_path / "b/synthtalk/train/train-000000.tar").read_bytes() == a
    assert (tmp_path / "b/index.json").read_bytes() == (out / "index.json").read_bytes()


def test_speaker_npy_comes_from_the_encoder_shards_speaker_encoder_names(first_run, manifest, params, tmp_path):
    """Another catalogue name for the same GE2E weights gives a clip the same speaker.npy as the
    default's (the shard step's own processor, the one every worker builds)."""
    from pretrained_support import mirror_entry

    from imagintalk.corpora.manifest import read_manifest
    from imagintalk.shards.process import ClipProcessor, read_tokenizer_blobs
    from pipelines.shard import default_tokenizer_dir

    out, _ = first_run
    mirrored = params.model_validate({**params.model_dump(), "shards": {**params.shards.model_dump(),
                                                                        "speaker_encoder": "ge2e-mirror"},
                                      "pretrained": {"cache_dir": str(tmp_path / "cache"),
                                                     "components": {"ge2e-mirror": mirror_entry("resemblyzer-ge2e")}}})
    processor = ClipProcessor(mirrored, read_tokenizer_blobs(default_tokenizer_dir(manifest)))
    assert processor.speaker.name == "ge2e-mirror"
    row = next(r for r in read_manifest(manifest) if r.split == "test")
    sample = processor(row).sample
    (shard,) = (out / "synthtalk/test").glob("*.tar")
    (shipped,) = list(wds.WebDataset(str(shard), shardshuffle=False))
    assert sample["speaker.npy"] == shipped["speaker.npy"]


@pytest.mark.ray
def test_ray_workers_write_the_same_shards_to_s3_and_the_loader_reads_them(first_run, manifest, params):
    """One Ray session (start-up ~30 s): two Ray Data workers, output on S3 (moto), same content."""
    from imagintalk.config import LoaderConfig
    from imagintalk.data import make_loader

    out, summary = first_run
    with moto_s3() as bucket:
        root = f"{bucket}/synth"
        s3 = shard_manifest(manifest, root, workers=2, params=params, tokenizer_dir=str(out / "_tokenizers"))
        assert s3.used_ray and s3.workers == 2
        assert s3.content_hash == summary.content_hash and s3.index_url == f"{root}/index.json"
        assert (s3.clips_ok, s3.quarantined) == (N_OK, N_BAD)
        assert storage.exists(f"{root}/synthtalk/train/train-000000.stats.json")
        assert len(read_quarantine(root)) == N_BAD
        batches = list(make_loader(root, "train", True, LoaderConfig(batch_size=2)))
        assert sorted(k for b in batches for k in b["keys"]) == [
            "synthtalk/astro/c0", "synthtalk/astro/c1", "synthtalk/hopper/c0", "synthtalk/hopper/c1"]
        assert batches[0]["lips"].shape == (2, 25, 88, 88) and batches[0]["codes"].shape == (2, 3, 50)


def test_cli_shard_prints_one_summary_line_and_refuses_a_missing_manifest(first_run, manifest, params_file,
                                                                          tmp_path):
    from pipelines.cli import app

    out, summary = first_run
    bad = CliRunner().invoke(app, ["shard", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "nope.parquet" in bad.output and "Traceback" not in bad.output
    ok = CliRunner().invoke(app, ["shard", str(manifest), "--out", str(out), "--params", str(params_file)])
    assert ok.exit_code == 0, ok.output
    lines = [ln for ln in ok.output.splitlines() if ln.startswith("shard:")]
    assert len(lines) == 1 and f"{N_OK} clips ok, {N_BAD} quarantined" in lines[0]
    assert summary.content_hash[:12] in lines[0]


def test_missing_tokenizer_artifacts_and_empty_manifest_are_one_line_errors(manifest, params, tmp_path):
    from imagintalk.corpora.manifest import write_manifest
    from imagintalk.errors import ArtifactError, DataError

    (tmp_path / "tok").mkdir()
    with pytest.raises(ArtifactError, match="missing tokenizer artifacts"):
        shard_manifest(manifest, str(tmp_path / "o"), params=params, tokenizer_dir=str(tmp_path / "tok"))
    empty = write_manifest([], tmp_path / "empty.parquet")
    with pytest.raises(DataError, match="no clips"):
        shard_manifest(empty, str(tmp_path / "o"), params=params)
    assert not (tmp_path / "o").exists()


def test_shard_only_shards_it_refuses_without_fitted_tokenizers_and_says_how_to_fit(params, params_file, tmp_path):
    """Tokenizers are fitted by their own stages (`imagintalk tokenizers`, fit_unit_tokenizer /
    fit_codec); `shard` never fits them. Without them it names the folder and the command."""
    from imagintalk.errors import ArtifactError
    from pipelines.cli import app

    lone = make_talking_manifest(tmp_path / "lone")
    with pytest.raises(ArtifactError, match=r"tokenizers: missing tokenizer artifacts.*imagintalk tokenizers"):
        shard_manifest(lone, str(tmp_path / "o"), params=params)
    assert not (tmp_path / "o").exists()
    fit = CliRunner().invoke(app, ["tokenizers", str(lone), "--params", str(params_file)])
    assert fit.exit_code == 0, fit.output
    assert {p.name for p in (lone.parent / "tokenizers").glob("*.npz")} == {"codec.npz", "unit_tokenizer.npz"}
    done = shard_manifest(lone, str(tmp_path / "o"), params=params)
    assert done.clips_ok == N_OK and (tmp_path / "o" / "_tokenizers" / "codec.npz").read_bytes() == (
        lone.parent / "tokenizers" / "codec.npz").read_bytes()
