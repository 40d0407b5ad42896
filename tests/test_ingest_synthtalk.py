"""The real SynthTalk generator's output goes through the synthtalk recipe unchanged: the
producer and the consumer of metadata.csv and the tree layout agree (issue 2's done-when)."""

from __future__ import annotations

import pytest
from synthtalk_support import CLIPS, N_CLIPS, TEST_SPEAKERS
from test_corpora_recipes import assert_speaker_disjoint, run_ingest

from imagintalk.config import Params
from imagintalk.media import read_video
from pipelines.synth import synth_corpus


def _generate(out, speakers: int, clips: int) -> None:
    synth_corpus(out, speakers=speakers, clips_per_speaker=clips, seed=0, params=Params())


def test_generated_synthtalk_ingests_with_labels_and_true_durations(synthtalk_raw, tmp_path):
    summary, rows, quarantine = run_ingest("synthtalk", synthtalk_raw, tmp_path)  # the session's corpus
    assert quarantine == [] and summary.n_clips == N_CLIPS
    assert summary.splits == {"train": CLIPS, "val": CLIPS, "test": TEST_SPEAKERS * CLIPS}
    for r in rows.values():
        assert r.transcript and r.transcript.isupper() and len(r.transcript.split()) == 6
        assert r.emotion is not None and r.intensity is not None
        assert r.duration_s == pytest.approx(len(read_video(r.video_path).frames) / 25, abs=1e-6)
    assert_speaker_disjoint(rows)


@pytest.mark.slow
def test_six_speakers_by_four_clips_give_24_rows(tmp_path):
    _generate(tmp_path / "D", speakers=6, clips=4)
    summary, rows, _ = run_ingest("synthtalk", tmp_path / "D", tmp_path)
    assert summary.n_clips == 24 and len({r.speaker for r in rows.values()}) == 6
    assert_speaker_disjoint(rows)
