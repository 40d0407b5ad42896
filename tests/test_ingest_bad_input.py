"""Bad input (issue 2 part 5): each kind of bad file is quarantined with its reason, the good
clips are all still in the manifest, and the summary counts both. A root that holds nothing in
the corpus's layout is an error for the whole command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_corpora_media import make_mp4, make_mpg, make_wav
from test_corpora_recipes import run_ingest

from imagintalk.errors import ConfigError, CorpusLayoutError

GOOD = {"synthtalk/spk00/00000", "synthtalk/spk00/00001", "synthtalk/spk01/00000", "synthtalk/spk02/00000"}


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A SynthTalk-layout tree of four good clips (no metadata: labels are not the point here)."""
    root = tmp_path / "corpus"
    for split, spk, clip in [("train", "spk00", "00000"), ("train", "spk00", "00001"),
                             ("val", "spk01", "00000"), ("test", "spk02", "00000")]:
        make_mp4(root / split / spk / f"{clip}.mp4")
    return root


def ingest_with_bad(corpus: Path, tmp_path: Path, bad: Path):
    summary, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path)
    assert GOOD <= set(rows), "a bad file must never cost a good clip"
    assert summary.n_clips == len(rows) and summary.n_quarantined == len(quarantine)
    hits = [q for q in quarantine if Path(q.path).name == bad.name]
    assert len(hits) == 1, quarantine
    assert hits[0].stage == "ingest" and hits[0].corpus == "synthtalk"
    return hits[0], rows


def test_corrupt_mp4_is_quarantined_and_rest_ingested(corpus, tmp_path):
    bad = corpus / "train" / "spk03" / "00000.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(os.urandom(4096))
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media" and "not a readable media file" in q.reason


def test_truncated_mp4_is_quarantined_and_rest_ingested(corpus, tmp_path):
    bad = make_mp4(corpus / "train" / "spk03" / "00000.mp4", n=50)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])   # index at the end: lost
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media"


def test_truncated_mp4_with_index_in_front_is_quarantined(corpus, tmp_path):
    bad = make_mp4(corpus / "train" / "spk03" / "00000.mp4", n=50, faststart=True)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])   # opens fine, data missing
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media" and "truncated" in q.reason


def test_zero_length_file_is_quarantined(corpus, tmp_path):
    bad = corpus / "test" / "spk02" / "00001.mp4"
    bad.touch()
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media" and "zero-length" in q.reason


def test_video_without_audio_track_is_quarantined_where_the_corpus_needs_one(corpus, tmp_path):
    bad = make_mp4(corpus / "train" / "spk03" / "00000.mp4", audio=False)
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media" and "missing audio track" in q.reason


def test_unreadable_file_is_quarantined(corpus, tmp_path):
    """chmod 000 where it bites; as root (which reads anything) a dangling symlink stands in for a
    file that cannot be opened."""
    bad = make_mp4(corpus / "train" / "spk03" / "00000.mp4")
    bad.chmod(0)
    if os.access(bad, os.R_OK):
        bad.chmod(0o644)
        bad.unlink()
        bad.symlink_to(corpus / "train" / "spk03" / "gone.mp4")
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "media" and ("permission denied" in q.reason.lower() or "does not exist" in q.reason)


def test_file_matching_no_pattern_is_quarantined_as_unknown_layout(corpus, tmp_path):
    bad = make_mp4(corpus / "holiday" / "clip.mp4")
    q, _ = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "layout" and q.reason.startswith("unknown layout")


def test_symlink_pointing_out_of_the_root_is_quarantined(corpus, tmp_path):
    outside = make_mp4(tmp_path / "elsewhere" / "secret.mp4")
    bad = corpus / "train" / "spk03" / "00000.mp4"
    bad.parent.mkdir(parents=True)
    bad.symlink_to(outside)
    q, rows = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "layout" and "outside the corpus root" in q.reason
    assert "synthtalk/spk03/00000" not in rows


def test_dotdot_directory_link_leaving_the_root_is_quarantined(corpus, tmp_path):
    make_mp4(tmp_path / "elsewhere" / "00000.mp4")
    bad = corpus / "train" / "spk04"
    bad.symlink_to(Path("..") / ".." / "elsewhere")   # relative, through ..
    q, rows = ingest_with_bad(corpus, tmp_path, bad)
    assert q.kind == "layout" and "outside the corpus root" in q.reason
    assert not any(r.speaker == "spk04" for r in rows.values())


def test_symlink_staying_inside_the_root_is_ingested(corpus, tmp_path):
    link = corpus / "train" / "spk03" / "00000.mp4"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("..") / "spk00" / "00000.mp4")
    _, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path)
    assert "synthtalk/spk03/00000" in rows and quarantine == []


def test_speaker_in_two_splits_keeps_only_its_test_clips(corpus, tmp_path):
    leak = make_mp4(corpus / "train" / "spk02" / "00009.mp4")   # spk02 is a test speaker
    summary, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path)
    assert {r.split for r in rows.values() if r.speaker == "spk02"} == {"test"}
    assert [Path(q.path) for q in quarantine] == [leak] and "speaker-disjoint" in quarantine[0].reason


def test_separate_audio_of_the_wrong_length_is_quarantined_as_a_bad_pairing(tmp_path):
    root = tmp_path / "GRID"
    make_mpg(root / "s4" / "bbaf2n.mpg")
    make_wav(root / "s4" / "audio" / "bbaf2n.wav", 3.0, 25000)
    make_mpg(root / "s4" / "bbaf3a.mpg")
    make_wav(root / "s4" / "audio" / "bbaf3a.wav", 0.32, 25000)
    _, rows, quarantine = run_ingest("grid", root, tmp_path)
    assert set(rows) == {"grid/s4/bbaf3a"}
    assert quarantine[0].kind == "audio" and "wrong pairing" in quarantine[0].reason


def test_root_with_no_recognisable_structure_is_a_layout_error(tmp_path):
    root = tmp_path / "random"
    make_mp4(root / "a" / "b" / "c" / "d.mp4")
    (root / "notes.txt").write_text("hello")
    with pytest.raises(CorpusLayoutError, match="no ravdess clips found"):
        run_ingest("ravdess", root, tmp_path)


@pytest.mark.parametrize("make_root", [lambda p: p / "missing", lambda p: make_wav(p / "a-file.wav")])
def test_missing_or_non_directory_root_is_a_layout_error(tmp_path, make_root):
    with pytest.raises(CorpusLayoutError):
        run_ingest("grid", make_root(tmp_path), tmp_path)


def test_unknown_corpus_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no corpus card"):
        run_ingest("timit", tmp_path, tmp_path)


def test_unreadable_directory_is_reported_not_silently_dropped(corpus, tmp_path):
    """A folder that cannot be listed is quarantined by name; where the user can list it anyway
    (root ignores modes) its clips are simply ingested. Either way nothing vanishes silently."""
    make_mp4(corpus / "train" / "spk03" / "00000.mp4")
    locked = corpus / "train" / "spk03"
    locked.chmod(0)
    try:
        listable = os.access(locked, os.R_OK | os.X_OK)
        _, rows, quarantine = run_ingest("synthtalk", corpus, tmp_path)
    finally:
        locked.chmod(0o755)
    assert GOOD <= set(rows)
    if listable:
        assert "synthtalk/spk03/00000" in rows
    else:
        assert [Path(q.path).name for q in quarantine] == ["spk03"]
        assert "unreadable directory" in quarantine[0].reason
