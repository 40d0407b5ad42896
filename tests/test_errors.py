"""Typed errors stay one line and survive crossing a process boundary (Ray workers, process pools)."""

import pickle

import pytest

from imagintalk.errors import (
    ArtifactError,
    AudioQualityError,
    ConfigError,
    CorpusLayoutError,
    DataError,
    FaceError,
    MediaError,
    RegistryError,
    StorageError,
)


@pytest.mark.parametrize("cls", [MediaError, CorpusLayoutError, FaceError, AudioQualityError, ConfigError,
                                 DataError, ArtifactError, RegistryError, StorageError])
def test_errors_pickle_round_trip_with_path_and_reason(cls):
    err = cls("/data/clip.mp4", "something\n  went wrong")
    assert str(err) == "/data/clip.mp4: something went wrong"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and (back.path, back.reason, str(back)) == (err.path, err.reason, str(err))


def test_each_error_class_says_what_failed():
    kinds = [c.kind for c in (DataError, ArtifactError, RegistryError, ConfigError, MediaError, StorageError)]
    assert kinds == ["data", "artifact", "registry", "config", "media", "storage"]


def test_unreadable_training_checkpoint_is_an_artifact_error_naming_the_file(tmp_path):
    import torch

    from imagintalk.train.checkpoint import MODEL_FILE, load_model_state

    (tmp_path / MODEL_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ArtifactError, match=rf"{MODEL_FILE}: unreadable checkpoint file"):
        load_model_state(tmp_path, torch.nn.Linear(2, 2))
    (tmp_path / MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="unreadable checkpoint file \\(FileNotFoundError\\)"):
        load_model_state(tmp_path, torch.nn.Linear(2, 2))
