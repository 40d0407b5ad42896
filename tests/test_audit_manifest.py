"""Manifest audits: clean data passes; each blocking defect, injected alone, fails and is named."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagintalk.config import AUDIT_SEVERITY_DEFAULTS, AuditConfig, Params, load_params
from imagintalk.corpora.manifest import ManifestRow, QuarantineRow, write_manifest
from imagintalk.errors import ConfigError
from pipelines.audit import audit_target
from pipelines.cli import app

SPEAKERS = {"s1": "train", "s2": "train", "s3": "train", "s4": "val", "s5": "test"}
EMOTIONS = ("neutral", "happy")


def clean_rows() -> list[ManifestRow]:
    rows = []
    for speaker, split in SPEAKERS.items():
        for i, emotion in enumerate(EMOTIONS):
            clip_id = f"synthtalk/{speaker}/clip{i:02d}"
            rows.append(ManifestRow(
                clip_id=clip_id, corpus="synthtalk", speaker=speaker, split=split,
                video_path=f"/data/synthtalk/{split}/{speaker}/clip{i:02d}.mp4", audio_path=None,
                transcript="bin blue at f two now", emotion=emotion, intensity=0.5, duration_s=2.0,
                fps=25.0, sample_rate=16000, sha256=hashlib.sha256(clip_id.encode()).hexdigest(),
            ))
    return rows


CLEAN_QUARANTINE = [QuarantineRow("/data/synthtalk/train/s1/broken.mp4", "synthtalk", "ingest", "media",
                                  "moov atom not found")]


def write(tmp_path: Path, rows: list[ManifestRow], quarantine: list[QuarantineRow] | None = None) -> Path:
    return write_manifest(rows, tmp_path / "manifest.parquet",
                          CLEAN_QUARANTINE if quarantine is None else quarantine)


def edit(rows: list[ManifestRow], clip_id: str, **changes) -> list[ManifestRow]:
    return [replace(r, **changes) if r.clip_id == clip_id else r for r in rows]


CLIP = "synthtalk/s2/clip01"
# expectation id -> (defect injected into otherwise clean rows, clip id the failure must name)
DEFECTS: dict[str, tuple[Callable[[list[ManifestRow]], list[ManifestRow]], str | None]] = {
    "manifest.fields_complete": (lambda rows: edit(rows, CLIP, sha256=None), CLIP),
    "manifest.row_valid": (lambda rows: edit(rows, CLIP, video_path="/etc/passwd"), CLIP),
    "manifest.clip_id_unique": (lambda rows: [*rows, replace(rows[3], sha256="f" * 64)], CLIP),
    "manifest.sha256_unique": (lambda rows: edit(rows, CLIP, sha256=rows[0].sha256), CLIP),
    "manifest.split_valid": (lambda rows: [replace(r, split="dev") if r.speaker == "s5" else r for r in rows],
                             "synthtalk/s5/clip00"),
    "manifest.speaker_disjoint_splits": (lambda rows: edit(rows, CLIP, split="test"), CLIP),
    "manifest.duration_in_range": (lambda rows: edit(rows, CLIP, duration_s=0.12), CLIP),
    "manifest.source_fps_supported": (lambda rows: edit(rows, CLIP, fps=12.0), CLIP),
    "manifest.sample_rate_sufficient": (lambda rows: edit(rows, CLIP, sample_rate=8000), CLIP),
    "manifest.transcript_present": (lambda rows: edit(rows, CLIP, transcript="  "), CLIP),
    "manifest.emotion_in_vocabulary": (lambda rows: edit(rows, CLIP, emotion="bored"), CLIP),
    "manifest.emotion_present": (lambda rows: edit(rows, CLIP, emotion=None), CLIP),
    "manifest.train_covers_labels": (lambda rows: edit(rows, "synthtalk/s5/clip01", emotion="sad"),
                                     "synthtalk/s5/clip01"),
}


@pytest.fixture
def params() -> Params:
    return Params()


def test_clean_manifest_passes_and_writes_data_docs_and_result_json(tmp_path, params):
    manifest = write(tmp_path, clean_rows())
    result = audit_target(str(manifest), tmp_path / "report", params)
    assert result.passed, [(o.id, o.observed, o.offenders) for o in result.failures]
    assert result.kind == "manifest"
    assert {s.name for s in result.suites} == {"manifest_clips", "manifest_ingest"}
    assert result.failures == []
    doc = json.loads((tmp_path / "report" / "result.json").read_text())
    assert doc["passed"] is True
    assert {o["id"] for s in doc["suites"] for o in s["outcomes"]} == {
        k for k in AUDIT_SEVERITY_DEFAULTS if k.startswith("manifest.")}
    text = html_text(result.data_docs)
    assert "manifest_clips" in text and "manifest_ingest" in text
    # the validation page renders our expectation ids (carried in the notes)
    pages = list((tmp_path / "report" / "data_docs" / "validations").rglob("*.html"))
    assert any("manifest.speaker_disjoint_splits" in html_text(p) for p in pages)


@pytest.mark.parametrize("expectation_id", sorted(DEFECTS))
def test_each_injected_manifest_defect_fails_the_audit_and_names_the_clip(tmp_path, params, expectation_id):
    defect, clip_id = DEFECTS[expectation_id]
    manifest = write(tmp_path, defect(clean_rows()))
    result = audit_target(str(manifest), None, params)
    assert not result.passed
    assert {o.id for o in result.blocking_failures} == {expectation_id}
    outcome = next(o for o in result.failures if o.id == expectation_id)
    assert clip_id in {x.id for x in outcome.offenders}, outcome.offenders


def test_speaker_in_two_splits_names_the_speaker_and_its_splits(tmp_path, params):
    manifest = write(tmp_path, edit(clean_rows(), CLIP, split="test"))
    outcome = next(o for o in audit_target(str(manifest), None, params).failures
                   if o.id == "manifest.speaker_disjoint_splits")
    details = {x.id: x.detail for x in outcome.offenders}
    assert set(details) == {"synthtalk/s2/clip00", CLIP}
    assert "speaker_id=synthtalk/s2" in details[CLIP] and "speaker_splits=test,train" in details[CLIP]


def test_quarantine_rate_above_threshold_fails_and_lists_the_quarantined_inputs(tmp_path, params):
    refused = [QuarantineRow(f"/data/bad{i}.mp4", "synthtalk", "ingest", "media", "truncated") for i in range(4)]
    result = audit_target(str(write(tmp_path, clean_rows(), refused)), None, params)
    assert {o.id for o in result.blocking_failures} == {"manifest.quarantine_rate"}
    outcome = result.blocking_failures[0]
    assert outcome.observed.startswith("0.2857")  # 4 of 14 inputs
    assert "/data/bad0.mp4 (media: truncated)" in {str(x) for x in outcome.offenders}


def test_empty_manifest_fails_as_empty(tmp_path, params):
    result = audit_target(str(write(tmp_path, [], [])), None, params)
    assert "manifest.not_empty" in {o.id for o in result.blocking_failures}


def test_corpus_without_labels_or_text_may_leave_them_null(tmp_path, params):
    rows = [replace(r, corpus="voxceleb2", clip_id=r.clip_id.replace("synthtalk", "voxceleb2"),
                    emotion=None, transcript=None) for r in clean_rows()]
    assert audit_target(str(write(tmp_path, rows)), None, params).passed


def test_card_decides_which_labels_are_required_mead_has_emotions_but_no_text(tmp_path, params):
    rows = [replace(r, corpus="mead", clip_id=r.clip_id.replace("synthtalk", "mead"), transcript=None)
            for r in clean_rows()]
    assert audit_target(str(write(tmp_path, rows)), None, params).passed
    rows = edit(rows, "mead/s2/clip01", emotion=None)
    failed = audit_target(str(write(tmp_path, rows)), None, params).blocking_failures
    assert [(o.id, [x.id for x in o.offenders]) for o in failed] == [("manifest.emotion_present", ["mead/s2/clip01"])]


def test_corpus_without_a_card_is_a_config_error(tmp_path, params):
    rows = [replace(r, corpus="nocorpus") for r in clean_rows()]
    with pytest.raises(ConfigError, match="no corpus card for 'nocorpus'"):
        audit_target(str(write(tmp_path, rows)), None, params)


def test_severity_from_params_turns_a_blocking_failure_into_a_warning(tmp_path):
    params = Params(audit=AuditConfig(severity={"manifest.speaker_disjoint_splits": "warning"}))
    result = audit_target(str(write(tmp_path, edit(clean_rows(), CLIP, split="test"))), None, params)
    assert result.passed
    assert [o.id for o in result.failures] == ["manifest.speaker_disjoint_splits"]
    assert "1 warning(s)" in result.summary_line()


def test_unknown_expectation_id_in_params_is_a_config_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("audit:\n  severity:\n    manifest.no_such_check: warning\n")
    with pytest.raises(ConfigError, match="no_such_check"):
        load_params(path)


def test_cli_exits_0_on_clean_and_1_with_a_failure_table_naming_the_clip(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    runner = CliRunner()
    clean = write(tmp_path / "clean", clean_rows())
    ok = runner.invoke(app, ["audit", str(clean), "--report", str(tmp_path / "r1"), "--params", str(params_file)])
    assert ok.exit_code == 0, ok.output
    assert "audit PASSED" in ok.output
    bad = write(tmp_path / "bad", edit(clean_rows(), CLIP, emotion="bored"))
    res = runner.invoke(app, ["audit", str(bad), "--report", str(tmp_path / "r2"), "--params", str(params_file)])
    assert res.exit_code == 1
    assert "manifest.emotion_in_vocabulary" in res.output and CLIP in res.output
    assert "audit FAILED" in res.output
    assert json.loads((tmp_path / "r2" / "result.json").read_text())["passed"] is False


def test_cli_missing_manifest_is_a_one_line_error(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    res = CliRunner().invoke(app, ["audit", str(tmp_path / "nope.parquet"), "--params", str(params_file)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"error: {tmp_path / 'nope.parquet'}: manifest does not exist"]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def html_text(path: Path | None) -> str:
    """Visible text plus inline scripts of an HTML page (GX renders some tables from JS data)."""
    assert path is not None and path.exists()
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(parser.chunks)
