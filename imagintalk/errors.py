"""Typed errors. Each names the offending input and the reason in one line, so a batch job can
quarantine the item with that reason and a CLI can print it and exit 1.

The class says what failed: the data (:class:`DataError`: a manifest, shard index or split that is
missing, empty or inconsistent), a saved artefact (:class:`ArtifactError`: a checkpoint, tokenizer
or model file that is missing, unreadable or does not match), the model registry
(:class:`RegistryError`), a setting (:class:`ConfigError`), a media file (:class:`MediaError`), or
the object store (:class:`StorageError`). All are picklable: Ray ships them from its workers."""

from __future__ import annotations

from pathlib import Path


class ImaginTalkError(Exception):
    """Base: ``str(err)`` is ``"<path>: <reason>"``, one line."""

    kind = "error"

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = " ".join(str(reason).split())  # keep it on one line
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)

    def __reduce__(self):
        # Ray and multiprocessing rebuild exceptions from their args; ours take (path, reason)
        return (self.__class__, (self.path, self.reason))


class MediaError(ImaginTalkError):
    """A media file cannot be read or written as asked (corrupt, truncated, no stream, ...)."""

    kind = "media"


class CorpusLayoutError(ImaginTalkError):
    """A file or tree does not follow the corpus's layout, or lies outside the corpus root."""

    kind = "layout"


class FaceError(ImaginTalkError):
    """No usable face: not found, or lost on too many frames."""

    kind = "face"


class AudioQualityError(ImaginTalkError):
    """Audio unusable for training: silent, or its length disagrees with the video."""

    kind = "audio"


class ConfigError(ImaginTalkError):
    """A configuration file or value is invalid."""

    kind = "config"


class DataError(ImaginTalkError):
    """The data a step reads is missing, empty or inconsistent: no manifest or dataset index, a
    stale index, a split without shards or batches, too few frames to fit on."""

    kind = "data"


class ArtifactError(ImaginTalkError):
    """A saved artefact (checkpoint, tokenizer, model file) is missing, unreadable, or does not
    match what reads it; or a stage it needs has not made it yet."""

    kind = "artifact"


class RegistryError(ImaginTalkError):
    """A registered model or version that a step needs is missing or unusable."""

    kind = "registry"


class StorageError(ImaginTalkError):
    """The storage root (an object store) cannot be reached or refused the request."""

    kind = "storage"
