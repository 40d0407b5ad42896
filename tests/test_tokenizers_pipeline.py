"""Stages fit_unit_tokenizer / fit_codec on a tiny manifest of real mp4 clips."""

from __future__ import annotations

import numpy as np
import pytest
from sample_media import espeak

from imagintalk.config import CodecConfig, Params, TokenizerConfig
from imagintalk.corpora.manifest import ManifestRow, write_manifest
from imagintalk.errors import DataError
from imagintalk.media import write_mp4
from imagintalk.tokenizers import ResidualCodec, UnitTokenizer
from pipelines.tokenizers import fit_codec, fit_unit_tokenizer

PARAMS = Params(tokenizer=TokenizerConfig(k=8), codec=CodecConfig(levels=3, codebook_size=16))
SENTENCES = [("train", "s1", "set blue at a one now"), ("train", "s2", "place green by d two soon"),
             ("train", "s3", "lay red with f three again"), ("val", "s4", "bin white in g four please"),
             ("test", "s5", "set red at b five now")]


def _clip(path, text: str):
    audio = espeak(text)
    n = len(audio) // 640
    frames = np.full((n, 32, 32, 3), 128, np.uint8)
    return write_mp4(path, frames, 25, audio[: n * 640])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for i, (split, spk, text) in enumerate(SENTENCES):
        path = _clip(root / f"{spk}_{i}.mp4", text)
        rows.append(ManifestRow(f"synthtalk/{spk}/{i}", "synthtalk", spk, split, str(path), None, text, "neutral",
                                None, 2.0, 25.0, 16000, f"{i:064d}"))
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    rows.append(ManifestRow("synthtalk/s1/9", "synthtalk", "s1", "train", str(broken), None, "x", None, None, 1.0,
                            25.0, 16000, "9" * 64))
    return root, rows


def test_fit_stages_write_versioned_artifacts_from_the_train_split(corpus, tmp_path):
    root, rows = corpus
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    tok = fit_unit_tokenizer(manifest, tmp_path / "tok", PARAMS)
    assert tok.n_clips == 3 and len(tok.skipped) == 1 and "broken.mp4" in tok.skipped[0]
    assert (tmp_path / "tok" / "unit_tokenizer.npz").exists() and (tmp_path / "tok" / "unit_tokenizer.json").exists()
    assert UnitTokenizer.load(tok.path).version == tok.version
    assert "K=8" in tok.summary_line() and tok.version[:12] in tok.summary_line()

    codec = fit_codec(manifest, tmp_path / "tok", PARAMS)
    assert codec.report_split == "val" and list(codec.recon_mse) == [1, 2, 3]
    assert codec.recon_mse[3] < codec.recon_mse[1]
    assert ResidualCodec.load(codec.path).version == codec.version
    line = codec.summary_line()
    assert "3x16" in line and "L1=" in line and "L3=" in line


def test_val_and_test_clips_do_not_shape_the_tokenizers(corpus, tmp_path):
    root, rows = corpus
    a = write_manifest(rows, tmp_path / "a.parquet")
    b = write_manifest([r for r in rows if r.split == "train"], tmp_path / "b.parquet")  # no val/test at all
    va = fit_unit_tokenizer(a, tmp_path / "a", PARAMS).version
    vb = fit_unit_tokenizer(b, tmp_path / "b", PARAMS).version
    assert va == vb
    assert (tmp_path / "a" / "unit_tokenizer.npz").read_bytes() == (tmp_path / "b" / "unit_tokenizer.npz").read_bytes()


def test_max_frames_stops_reading_early(corpus, tmp_path):
    _, rows = corpus
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    params = Params(tokenizer=TokenizerConfig(k=4, max_frames=60))
    s = fit_unit_tokenizer(manifest, tmp_path / "t", params)
    assert s.n_clips == 1 and s.n_frames == 60


def test_manifest_without_train_clips_is_refused(corpus, tmp_path):
    _, rows = corpus
    manifest = write_manifest([r for r in rows if r.split != "train"], tmp_path / "m.parquet")
    with pytest.raises(DataError, match="no train-split clips"):
        fit_codec(manifest, tmp_path / "c", PARAMS)
