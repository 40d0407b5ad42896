"""SynthTalk corpus: layout, metadata, media format, determinism, faces the production path finds.

The session's small corpus (conftest.synthtalk_raw: 4 speakers × 2 clips) is what is checked."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from synthtalk_support import CLIPS, SPEAKERS
from typer.testing import CliRunner

from imagintalk.config import Params, SynthConfig
from imagintalk.errors import ConfigError
from imagintalk.media import probe, read_clip
from imagintalk.synth.clip import METADATA_COLUMNS
from imagintalk.synth.grammar import SLOTS
from imagintalk.synth.plan import plan_corpus, split_of_speakers
from pipelines.cli import app
from pipelines.synth import synth_corpus


@pytest.fixture
def corpus(synthtalk_raw) -> Path:
    return synthtalk_raw


def metadata(root: Path) -> list[dict]:
    with open(root / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_metadata_and_lrs3_transcripts(corpus):
    rows = metadata(corpus)
    with open(corpus / "metadata.csv") as f:
        assert f.readline().strip() == ",".join(METADATA_COLUMNS)
    assert len(rows) == SPEAKERS * CLIPS
    splits = {r["speaker"]: r["split"] for r in rows}
    assert sorted(splits.values()) == ["test", "test", "train", "val"]  # speaker-disjoint
    for r in rows:
        base = corpus / r["split"] / r["speaker"] / r["clip"]
        assert base.with_suffix(".mp4").is_file()
        lines = base.with_suffix(".txt").read_text().splitlines()
        assert lines[0] == f"Text:  {r['transcript']}" and lines[1] == "Conf:  1"
        words = r["transcript"].split()
        assert r["transcript"].isupper() and len(words) == 6
        assert all(w.lower() in slot for w, slot in zip(words, SLOTS, strict=True))
        table = [ln.split() for ln in lines[lines.index("WORD START END ASDSCORE") + 1:]]
        assert [t[0] for t in table] == words
        starts = [float(t[1]) for t in table]
        assert starts == sorted(starts) and all(float(t[2]) >= float(t[1]) for t in table)
        assert r["emotion"] in SynthConfig().emotions and int(r["seed"]) == 0
    # a speaker is one face and one voice; different speakers differ in both
    per_speaker = {(r["speaker"], r["identity"], r["voice"], r["pitch"], r["rate"]) for r in rows}
    assert len(per_speaker) == SPEAKERS
    assert len({p[1] for p in per_speaker}) == SPEAKERS and len({p[2] for p in per_speaker}) == SPEAKERS
    roster = json.loads((corpus / "speakers.json").read_text())
    assert {r["speaker"]: r["identity"] for r in rows} == {k: v["identity"]["name"] for k, v in roster.items()}


def test_mp4_is_h264_aac_and_video_covers_audio_within_a_frame(corpus):
    for r in metadata(corpus):
        path = corpus / r["split"] / r["speaker"] / f"{r['clip']}.mp4"
        info = probe(path)
        assert (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert info.fps == pytest.approx(25.0) and info.sample_rate == 16000
        assert (info.width, info.height) == (160, 160)
        clip = read_clip(path)
        assert abs(len(clip.audio) / 16000 - len(clip.frames) / 25) <= 1 / 25
        assert abs(clip.av_mismatch_s) <= 1 / 25
        assert 1.8 <= len(clip.frames) / 25 <= 4.0


def test_same_seed_gives_identical_bytes_and_other_seed_differs(corpus, synthtalk_params, tmp_path):
    again = tmp_path / "again"  # and on a two-process pool: the bytes do not depend on the workers
    synth = synthtalk_params.synth
    pooled = Params().model_copy(update={"synth": synth.model_copy(update={"workers": 2})})
    synth_corpus(again, params=pooled)
    assert hashes(again) == hashes(corpus)
    other = tmp_path / "other"
    synth_corpus(other, seed=1, params=Params().model_copy(update={"synth": synth}))
    a, b = hashes(corpus), hashes(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".mp4"))


def test_production_face_path_finds_the_face_on_95_percent_of_frames(corpus):
    from imagintalk.preprocess.detector import DlibFaceDetector
    from imagintalk.preprocess.face_track import track_faces

    cfg = Params().face
    detector = DlibFaceDetector(upsample=0)
    tracked = detected = total = 0
    for path in sorted(corpus.rglob("*.mp4")):
        frames = read_clip(path).frames
        track = track_faces(frames, cfg)
        tracked += int(track.found.sum())
        detected += sum(bool(detector.detect(f)) for f in frames)  # HOG alone, every frame
        total += len(frames)
    assert tracked / total >= 0.95
    assert detected / total >= 0.95


def test_speakers_split_disjointly_and_emotions_cover_every_large_split():
    assert split_of_speakers(1, 1, 1) == ["train"]
    assert split_of_speakers(2, 1, 1) == ["train", "test"]
    assert split_of_speakers(6, 1, 2) == ["train"] * 3 + ["val"] + ["test"] * 2
    plan = plan_corpus(7, 5, 3, SynthConfig())
    emotions: dict[str, set] = {}
    for c in plan:
        emotions.setdefault(c.speaker.split, set()).add(c.emotion)
        assert (c.intensity == 0.0) == (c.emotion == "neutral")
    assert all(e == set(SynthConfig().emotions) for e in emotions.values())


def test_rerun_replaces_an_earlier_corpus_and_foreign_dirs_are_refused(tmp_path):
    out = tmp_path / "D"
    synth_corpus(out, speakers=1, clips_per_speaker=2, seed=0, params=Params())
    synth_corpus(out, speakers=1, clips_per_speaker=1, seed=0, params=Params())
    assert sorted(p.name for p in out.rglob("*.mp4")) == ["00000.mp4"]
    assert len(metadata(out)) == 1
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(ConfigError, match="not a SynthTalk corpus"):
        synth_corpus(foreign, speakers=1, clips_per_speaker=1, params=Params())
    with pytest.raises(ConfigError, match="cannot act"):
        plan_corpus(1, 1, 0, SynthConfig(emotions=["neutral", "contempt"]))


def test_cli_writes_a_corpus_and_reports_bad_output_dir(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "D"), "--speakers", "1",
                                 "--clips-per-speaker", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("synth: 1 clips from 1 speakers")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    result = runner.invoke(app, ["synth", "--out", str(afile), "--speakers", "1", "--clips-per-speaker", "1"])
    assert result.exit_code == 1
    assert "error:" in result.output and "not a directory" in result.output


def test_metadata_intensity_and_seed_columns_parse(corpus):
    for r in metadata(corpus):
        assert 0.0 <= float(r["intensity"]) <= 1.0
        assert r["voice"].startswith("en-us+") and r["identity"].startswith("id")
        assert 0 <= int(r["pitch"]) <= 100 and 80 <= int(r["rate"]) <= 450
    assert np.isfinite([float(r["intensity"]) for r in metadata(corpus)]).all()
