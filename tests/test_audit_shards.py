"""Shard-root audits: clean sidecars/tars/index pass; each blocking defect, injected alone, fails and is named.

The shard root is written here by hand in the shard writer's layout (index.json, quarantine.json,
``{corpus}/{split}/{split}-NNNNNN.tar`` + ``.stats.json``) so these tests need no media.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from typer.testing import CliRunner

from imagintalk.config import AUDIT_SEVERITY_DEFAULTS, Params
from imagintalk.errors import CorpusLayoutError
from pipelines.audit import audit_target
from pipelines.cli import app

# shard -> speakers; train spans two shards so a duplicate key can sit in the same split
LAYOUT = {"synthtalk/train/train-000000.tar": ("s1", "s2"), "synthtalk/train/train-000001.tar": ("s3",),
          "synthtalk/val/val-000000.tar": ("s4",), "synthtalk/test/test-000000.tar": ("s5",)}
EMOTIONS = ("neutral", "happy")
T = 50  # video frames per clip: 2 s at 25 fps


def clean_sample(speaker: str, split: str, i: int) -> dict[str, Any]:
    return {"key": f"synthtalk/{speaker}/clip{i:02d}", "split": split, "speaker": speaker,
            "emotion": EMOTIONS[i], "duration_s": T / 25, "n_frames": T, "face_ratio": 1.0,
            "lip_sharpness": 120.0, "lip_brightness": 110.0, "audio_rms": 0.05, "clipping_ratio": 0.0,
            "silence_ratio": 0.2, "av_mismatch_s": 0.01, "units_per_s": 50.0, "codes_shape": [8, 2 * T],
            "mel_frames": 4 * T, "speaker_norm": 1.0}


def tar_bytes(keys: list[str]) -> bytes:
    """A WebDataset-style tar: two members per sample, deterministic bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key in keys:
            for ext, data in (("meta.json", json.dumps({"clip_id": key}).encode()),
                              ("units.npy", key.encode() * 4)):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_root(root: Path) -> Path:
    """A clean shard root: 10 samples in 4 shards, one quarantined clip (rate 1/11)."""
    index_shards, splits = [], {}
    for shard, speakers in LAYOUT.items():
        split = shard.split("/")[1]
        samples = [clean_sample(s, split, i) for s in speakers for i in range(len(EMOTIONS))]
        data = tar_bytes([s["key"] for s in samples])
        sha = hashlib.sha256(data).hexdigest()
        (root / shard).parent.mkdir(parents=True, exist_ok=True)
        (root / shard).write_bytes(data)
        sidecar = {"shard": shard, "corpus": "synthtalk", "split": split, "n_samples": len(samples),
                   "sha256": sha, "samples": samples, "quarantined": []}
        (root / shard.replace(".tar", ".stats.json")).write_text(json.dumps(sidecar))
        index_shards.append({"path": shard, "corpus": "synthtalk", "split": split,
                             "n_samples": len(samples), "sha256": sha})
        entry = splits.setdefault(split, {"n_samples": 0, "speakers": [], "shards": []})
        entry["n_samples"] += len(samples)
        entry["speakers"] += list(speakers)
        entry["shards"].append(shard)
    (root / "index.json").write_text(json.dumps({"splits": splits, "shards": index_shards,
                                                 "content_hash": "0" * 64}))
    (root / "quarantine.json").write_text(json.dumps(
        [{"clip_id": "synthtalk/s1/clip09", "kind": "face", "reason": "face found on 12% of frames"}]))
    return root


def edit_json(path: Path, fn: Callable[[Any], Any]) -> None:
    """Apply ``fn`` (which edits the parsed JSON in place; its return value is ignored)."""
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def sidecar_of(root: Path, shard: str) -> Path:
    return root / shard.replace(".tar", ".stats.json")


def edit_sample(root: Path, key: str, **changes: Any) -> None:
    for shard in LAYOUT:
        def apply(sc: dict) -> None:
            for s in sc["samples"]:
                if s["key"] == key:
                    s.update(changes)
        edit_json(sidecar_of(root, shard), apply)


TRAIN0, TRAIN1 = "synthtalk/train/train-000000.tar", "synthtalk/train/train-000001.tar"
CLIP = "synthtalk/s2/clip01"
VAL_CLIP = "synthtalk/s4/clip01"


def drop_face_ratio(root: Path) -> None:
    edit_json(sidecar_of(root, TRAIN0), lambda sc: [s.pop("face_ratio") for s in sc["samples"] if s["key"] == CLIP])


def duplicate_key(root: Path) -> None:
    """s3's shard also carries CLIP (tar, sidecar, counts and hashes all kept consistent)."""
    dup = clean_sample("s2", "train", 1)

    def add(sc: dict) -> None:
        sc["samples"].append(dup)
        sc["n_samples"] += 1
        data = tar_bytes([s["key"] for s in sc["samples"]])
        (root / TRAIN1).write_bytes(data)
        sc["sha256"] = hashlib.sha256(data).hexdigest()
    edit_json(sidecar_of(root, TRAIN1), add)
    sha = json.loads(sidecar_of(root, TRAIN1).read_text())["sha256"]

    def index(ix: dict) -> None:
        ix["splits"]["train"]["n_samples"] += 1
        next(s for s in ix["shards"] if s["path"] == TRAIN1)["sha256"] = sha
    edit_json(root / "index.json", index)


def all_samples_of_speaker(root: Path, speaker: str, **changes: Any) -> None:
    for i in range(len(EMOTIONS)):
        edit_sample(root, f"synthtalk/{speaker}/clip{i:02d}", **changes)


def short_shard(root: Path) -> None:
    """The tar lost its last sample (rewritten without it); the sidecar still declares it."""
    (root / TRAIN0).write_bytes(tar_bytes(["synthtalk/s1/clip00", "synthtalk/s1/clip01", "synthtalk/s2/clip00"]))


def tampered_tar(root: Path) -> None:
    data = bytearray((root / TRAIN0).read_bytes())
    pos = data.index(b"synthtalk/s1/clip00synthtalk")  # inside a member's payload, not a header
    data[pos] = ord("X")
    (root / TRAIN0).write_bytes(bytes(data))


def unlisted_sample(root: Path) -> None:
    edit_json(sidecar_of(root, TRAIN0), lambda sc: sc["samples"].pop())


def stale_index_hash(root: Path) -> None:
    edit_json(root / "index.json", lambda ix: ix["shards"][0].update(sha256="e" * 64))


def index_count_off(root: Path) -> None:
    edit_json(root / "index.json", lambda ix: ix["splits"]["val"].update(n_samples=3))


def many_quarantined(root: Path) -> None:
    edit_json(root / "quarantine.json", lambda q: q.extend([
        {"clip_id": f"synthtalk/s9/clip{i:02d}", "kind": "audio", "reason": "silent audio"} for i in range(3)]))


# expectation id -> (defect applied to a clean root, id the failure must name, other ids it may also trip)
DEFECTS: dict[str, tuple[Callable[[Path], None], str, set[str]]] = {
    "shards.fields_complete": (drop_face_ratio, CLIP, set()),
    "shards.clip_id_unique": (duplicate_key, CLIP, set()),
    "shards.split_valid": (lambda r: all_samples_of_speaker(r, "s5", split="dev"), "synthtalk/s5/clip00", set()),
    "shards.speaker_disjoint_splits": (lambda r: edit_sample(r, VAL_CLIP, speaker="s1"), VAL_CLIP, set()),
    "shards.emotion_in_vocabulary": (lambda r: edit_sample(r, CLIP, emotion="bored"), CLIP, set()),
    "shards.train_covers_labels": (lambda r: edit_sample(r, VAL_CLIP, emotion="sad"), VAL_CLIP, set()),
    "shards.face_ratio_min": (lambda r: edit_sample(r, CLIP, face_ratio=0.0), CLIP, set()),
    "shards.audio_rms_min": (lambda r: edit_sample(r, CLIP, audio_rms=0.0), CLIP, set()),
    "shards.clipping_ratio_max": (lambda r: edit_sample(r, CLIP, clipping_ratio=0.2), CLIP, set()),
    "shards.units_per_s": (lambda r: edit_sample(r, CLIP, units_per_s=25.0), CLIP, set()),
    "shards.codes_levels": (lambda r: edit_sample(r, CLIP, codes_shape=[4, 2 * T]), CLIP, set()),
    "shards.codes_steps": (lambda r: edit_sample(r, CLIP, codes_shape=[8, 2 * T - 3]), CLIP, set()),
    "shards.mel_frames": (lambda r: edit_sample(r, CLIP, mel_frames=4 * T - 1), CLIP, set()),
    "shards.frames_match_duration": (lambda r: edit_sample(r, CLIP, duration_s=T / 25 + 0.5), CLIP, set()),
    "shards.av_mismatch": (lambda r: edit_sample(r, CLIP, av_mismatch_s=-0.3), CLIP, set()),
    "shards.sidecar_count": (unlisted_sample, TRAIN0, set()),
    # a short tar cannot keep its sidecar's hash: the sha check trips too
    "shards.tar_complete": (short_shard, TRAIN0, {"shards.tar_sha256"}),
    "shards.tar_sha256": (tampered_tar, TRAIN0, set()),
    "shards.index_sha256": (stale_index_hash, TRAIN0, set()),
    "shards.index_counts": (index_count_off, "val", set()),
    "shards.quarantine_rate": (many_quarantined, "synthtalk/s9/clip00", set()),
}


@pytest.fixture
def params() -> Params:
    return Params()


@pytest.fixture
def root(tmp_path) -> Path:
    return write_root(tmp_path / "shards")


def test_clean_shard_root_passes_and_writes_data_docs(root, tmp_path, params):
    result = audit_target(str(root), tmp_path / "report", params)
    assert result.passed and result.failures == [], [(o.id, o.observed, o.offenders) for o in result.failures]
    assert result.kind == "shards"
    assert {s.name for s in result.suites} == {"shard_samples", "shard_files", "shard_splits", "shard_quarantine"}
    index_html = (tmp_path / "report" / "data_docs" / "index.html").read_text()
    for suite in ("shard_samples", "shard_files", "shard_splits", "shard_quarantine"):
        assert suite in index_html
    assert json.loads((tmp_path / "report" / "result.json").read_text())["passed"] is True


def test_every_catalogued_expectation_runs_in_some_suite(root, tmp_path, params):
    manifest_ids = {k for k in AUDIT_SEVERITY_DEFAULTS if k.startswith("manifest.")}
    shard_ids = {o.id for o in audit_target(str(root), None, params).outcomes}
    assert shard_ids | manifest_ids == set(AUDIT_SEVERITY_DEFAULTS)


def test_every_blocking_shard_expectation_has_an_injected_defect_test():
    blocking = {k for k, v in AUDIT_SEVERITY_DEFAULTS.items() if k.startswith("shards.") and v == "blocking"}
    assert blocking - set(DEFECTS) == {"shards.not_empty"}  # covered by its own test below


@pytest.mark.parametrize("expectation_id", sorted(DEFECTS))
def test_each_injected_shard_defect_fails_the_audit_and_names_the_offender(root, params, expectation_id):
    defect, offender, also = DEFECTS[expectation_id]
    defect(root)
    result = audit_target(str(root), None, params)
    assert not result.passed
    assert expectation_id in {o.id for o in result.blocking_failures}
    assert {o.id for o in result.blocking_failures} - {expectation_id} <= also
    outcome = next(o for o in result.failures if o.id == expectation_id)
    assert offender in {x.id for x in outcome.offenders}, outcome.offenders


def test_sample_without_speaker_embedding_fails_fields_complete(root, params):
    """A shard written before speaker.npy (no ``speaker_norm`` in its stats) is incomplete."""
    edit_json(sidecar_of(root, TRAIN0), lambda sc: [s.pop("speaker_norm") for s in sc["samples"] if s["key"] == CLIP])
    result = audit_target(str(root), None, params)
    outcome = next(o for o in result.blocking_failures if o.id == "shards.fields_complete")
    assert CLIP in {x.id for x in outcome.offenders}


def test_short_shard_names_the_clip_missing_from_the_tar(root, params):
    short_shard(root)
    outcome = next(o for o in audit_target(str(root), None, params).failures if o.id == "shards.tar_complete")
    assert "missing_keys=synthtalk/s2/clip01" in outcome.offenders[0].detail


def test_truncated_tar_counts_as_short(root, params):
    data = (root / TRAIN1).read_bytes()
    (root / TRAIN1).write_bytes(data[:1024])
    failed = {o.id for o in audit_target(str(root), None, params).blocking_failures}
    assert {"shards.tar_complete", "shards.tar_sha256"} <= failed


def test_root_without_samples_fails_as_empty(tmp_path, params):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "index.json").write_text(json.dumps({"splits": {}, "shards": []}))
    assert "shards.not_empty" in {o.id for o in audit_target(str(root), None, params).blocking_failures}


def test_warning_failure_is_reported_but_does_not_fail_the_audit(root, params):
    edit_sample(root, CLIP, lip_sharpness=0.0, lip_brightness=250.0)
    result = audit_target(str(root), None, params)
    assert result.passed
    assert {o.id for o in result.failures} == {"shards.lip_sharpness_range", "shards.lip_brightness_range"}
    assert all(o.severity == "warning" for o in result.failures)


def test_shard_root_on_an_fsspec_filesystem_is_audited(root, params):
    fs = fsspec.filesystem("memory")
    for path in root.rglob("*"):
        if path.is_file():
            fs.pipe(f"/audit-root/{path.relative_to(root).as_posix()}", path.read_bytes())
    edit = json.loads(fs.cat("/audit-root/synthtalk/train/train-000000.stats.json"))
    edit["samples"][3]["audio_rms"] = 0.0
    fs.pipe("/audit-root/synthtalk/train/train-000000.stats.json", json.dumps(edit).encode())
    result = audit_target("memory://audit-root", None, params)
    assert {o.id for o in result.blocking_failures} == {"shards.audio_rms_min"}
    assert result.blocking_failures[0].offenders[0].id == CLIP


def test_directory_that_is_not_a_shard_root_is_a_layout_error(tmp_path, params):
    with pytest.raises(CorpusLayoutError, match="no index.json"):
        audit_target(str(tmp_path), None, params)


def test_malformed_sidecar_is_a_layout_error(root, params):
    sidecar_of(root, TRAIN1).write_text("{not json")
    with pytest.raises(CorpusLayoutError, match="train-000001.stats.json: not valid JSON"):
        audit_target(str(root), None, params)


def test_cli_on_shard_root_exits_0_clean_and_1_naming_the_silent_clip(root, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", str(root), "--params", str(params_file)])
    assert ok.exit_code == 0, ok.output
    edit_sample(root, CLIP, audio_rms=0.0)
    bad = runner.invoke(app, ["audit", str(root), "--report", str(tmp_path / "rep"), "--params", str(params_file)])
    assert bad.exit_code == 1
    assert "shards.audio_rms_min" in bad.output and CLIP in bad.output and "blocking" in bad.output
    doc = json.loads((tmp_path / "rep" / "result.json").read_text())
    failed = [o for s in doc["suites"] for o in s["outcomes"] if not o["success"]]
    assert [(o["id"], o["offenders"][0]["id"]) for o in failed] == [("shards.audio_rms_min", CLIP)]


def test_cli_on_a_missing_root_is_a_one_line_error(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    res = CliRunner().invoke(app, ["audit", str(tmp_path / "nowhere"), "--params", str(params_file)])
    assert res.exit_code == 1
    assert len(res.output.strip().splitlines()) == 1 and "no index.json" in res.output
