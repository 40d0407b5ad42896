"""Typed errors stay one line and survive crossing a process boundary (Ray workers, process pools)."""

import pickle

import pytest

from imagintalk.errors import AudioQualityError, ConfigError, CorpusLayoutError, FaceError, MediaError


@pytest.mark.parametrize("cls", [MediaError, CorpusLayoutError, FaceError, AudioQualityError, ConfigError])
def test_errors_pickle_round_trip_with_path_and_reason(cls):
    err = cls("/data/clip.mp4", "something\n  went wrong")
    assert str(err) == "/data/clip.mp4: something went wrong"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and (back.path, back.reason, str(back)) == (err.path, err.reason, str(err))
