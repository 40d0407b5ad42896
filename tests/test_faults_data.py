"""Hostile and careless input to ingest, the manifest reader and the manifest audit (issue 14):
manifest fields never become paths outside the output root, outputs never overwrite inputs,
configured limits are applied. Each case: a one-line error naming the input, and nothing lost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_manifest import clean_rows, write
from test_corpora_media import make_mp4
from test_corpora_recipes import run_ingest
from typer.testing import CliRunner

from imagintalk.config import Params
from imagintalk.corpora.manifest import read_manifest
from imagintalk.errors import ConfigError, DataError
from pipelines.audit import audit_target
from pipelines.cli import app
from pipelines.ingest import ingest_corpus

HOSTILE = [
    {"corpus": "../../victim", "clip_id": "../../victim/s1/clip00"},
    {"speaker": "..", "clip_id": "synthtalk/../clip00"},
    {"clip_id": "synthtalk/s1/../../x"},
    {"clip_id": "synthtalk/s1/.hidden"},
    {"split": "dev"},
    {"video_path": "/etc/passwd"},
    {"video_path": "relative/clip.mp4"},
    {"duration_s": float("nan")},
]


@pytest.mark.parametrize("change", HOSTILE, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_manifest_row_that_could_become_a_path_is_refused_naming_the_row(tmp_path, change):
    rows = clean_rows()
    rows[2] = replace(rows[2], **change)
    path = write(tmp_path, rows)
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and "row " in err.value.reason and "\n" not in str(err.value)
    assert len(read_manifest(path, strict=False)) == len(rows)   # lenient read (audit) keeps every row


def test_string_typed_numeric_column_is_a_one_line_error(tmp_path):
    table = pq.read_table(write(tmp_path, clean_rows()))
    i = table.schema.get_field_index("duration_s")
    bad = table.set_column(i, "duration_s", pa.array([str(v) for v in table["duration_s"].to_pylist()]))
    pq.write_table(bad, tmp_path / "manifest.parquet")
    with pytest.raises(DataError, match="column duration_s is string, expected double"):
        read_manifest(tmp_path / "manifest.parquet")


def test_audit_fails_a_row_whose_path_is_etc_passwd_and_names_it(tmp_path):
    rows = clean_rows()
    rows[1] = replace(rows[1], video_path="/etc/passwd")
    result = audit_target(write(tmp_path, rows), params=Params())
    assert not result.passed
    [failure] = [o for o in result.failures if o.id == "manifest.row_valid"]
    assert rows[1].clip_id in str(failure.offenders) and "/etc/passwd" in str(failure.offenders)


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    for split, spk, clip in [("train", "spk00", "00000"), ("val", "spk01", "00000"), ("test", "spk02", "00000")]:
        make_mp4(root / split / spk / f"{clip}.mp4")
    return root


@pytest.mark.parametrize("where", ["metadata.csv", "train/spk00/00000.mp4", "m.parquet", "sub/m.parquet"])
def test_ingest_refuses_an_output_inside_the_input_corpus_and_keeps_it_intact(corpus, where):
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    res = CliRunner().invoke(app, ["ingest", "synthtalk", str(corpus), "--out", str(corpus / where)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    [line] = res.output.strip().splitlines()
    assert line.startswith(f"error: {corpus / where}: ")
    assert {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()} == before


def test_ingest_through_a_symlink_into_the_corpus_is_refused(corpus, tmp_path):
    (tmp_path / "link").symlink_to(corpus)
    with pytest.raises(ConfigError, match="inside the input corpus"):
        ingest_corpus("synthtalk", corpus, tmp_path / "link" / "m.parquet", params=Params())
    assert not (corpus / "m.parquet").exists()


def test_ingest_applies_its_duration_limits_and_keeps_the_other_clips(corpus, tmp_path):
    make_mp4(corpus / "train" / "spk03" / "00000.mp4", n=1)       # one frame: 0.04 s < 0.2 s
    make_mp4(corpus / "train" / "spk04" / "00000.mp4", n=40)      # 1.6 s > the 1.0 s set below
    summary, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path, max_duration_s=1.0)
    assert set(rows) == {"synthtalk/spk00/00000", "synthtalk/spk01/00000", "synthtalk/spk02/00000"}
    reasons = {Path(q.path).parent.name: q.reason for q in quarantine}
    assert "0.04 s, outside ingest's [0.2, 1] s" in reasons["spk03"]
    assert "1.60 s, outside ingest's [0.2, 1] s" in reasons["spk04"]
    assert summary.n_quarantined == 2


def test_ingest_quarantines_a_speaker_folder_that_is_not_a_safe_name(corpus, tmp_path):
    make_mp4(corpus / "train" / ".." / "train" / "spk00" / "00001.mp4")   # stays valid: same folder
    make_mp4(corpus / "train" / "spk\x01x" / "00000.mp4")
    _, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path)
    assert "synthtalk/spk00/00001" in rows and len(rows) == 4
    assert any("is not a safe name" in q.reason for q in quarantine)
