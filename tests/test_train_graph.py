"""The model-stage graph's data shares: the error detector learns on speakers the aligner never saw."""

from __future__ import annotations

import pytest

from imagintalk.config import Params
from imagintalk.train.graph import STAGES, holdout_split

SPEAKERS = [f"spk{i:02d}" for i in range(12)]


@pytest.mark.parametrize(("n", "fraction", "held"), [(12, 0.25, 3), (4, 0.25, 1), (2, 0.25, 1), (1, 0.25, 0),
                                                     (12, 0.0, 0), (3, 0.9, 2)])
def test_holdout_split_is_disjoint_complete_and_never_takes_everyone(n, fraction, held):
    fit, held_out = holdout_split(SPEAKERS[:n][::-1], fraction)
    assert len(held_out) == held and not set(fit) & set(held_out)
    assert sorted(fit + held_out) == SPEAKERS[:n] and (fit or n == 0)
    assert holdout_split(SPEAKERS[:n], fraction) == (fit, held_out)  # order of the input does not matter


def test_aligner_and_detector_learn_on_disjoint_train_speakers_and_score_on_all_val():
    params = Params()
    aligner = STAGES["lip_aligner"].loader_config(params, train_speakers=SPEAKERS)
    detector = STAGES["error_detector"].loader_config(params, train_speakers=SPEAKERS)
    assert aligner.speakers and detector.speakers and not set(aligner.speakers) & set(detector.speakers)
    assert sorted(aligner.speakers + detector.speakers) == SPEAKERS
    assert STAGES["unit_bert"].loader_config(params, train_speakers=SPEAKERS).speakers is None
    assert STAGES["error_detector"].loader_config(params, train=False, train_speakers=SPEAKERS).speakers is None
    off = params.model_copy(update={"train": params.train.model_copy(update={"detector_holdout": 0.0})})
    assert STAGES["lip_aligner"].loader_config(off, train_speakers=SPEAKERS).speakers is None
