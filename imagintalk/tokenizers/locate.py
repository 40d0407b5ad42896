"""Where a shard root's codec lives, and loading it checked against the shards' codec version.

The register stage (the composite carries the codec) and the vocoder's training stage (it learns
on the codec decoder's output, what it receives at inference) both need the codec the shards were
tokenised with; this is the one place that finds it, and :func:`load_codec` the one place that
tells the k-means codec from a pretrained one (imagintalk/tokenizers/neural_codec.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from imagintalk import storage
from imagintalk.config import Params
from imagintalk.conventions import SHARD_TOKENIZER_DIR
from imagintalk.errors import ArtifactError
from imagintalk.tokenizers import CODEC_FILE
from imagintalk.tokenizers.codec import ResidualCodec

if TYPE_CHECKING:
    from imagintalk.tokenizers.neural_codec import NeuralCodec


def load_codec(path: str | Path, params: Params | None = None) -> ResidualCodec | NeuralCodec:
    """A codec artifact of either kind: the fitted k-means codec, or the record of a pretrained
    codec (its weights resolved through ``params``' pretrained cache / storage root)."""
    from imagintalk.tokenizers.neural_codec import KIND, NeuralCodec, artifact_kind

    if artifact_kind(path) == KIND:
        return NeuralCodec.load(path, params)
    return ResidualCodec.load(path)


class CodecNotFound(ArtifactError):
    """No codec artifact for a shard root, or one of another version than the shards'."""


def codec_url(shards: str) -> str:
    """Where a shard root's codec lives: the copy the shard step keeps with the shards
    (``{shards}/_tokenizers``), whoever fitted it."""
    return storage.join(shards, SHARD_TOKENIZER_DIR, CODEC_FILE)


def find_codec(shards: str, expected_version: str | None, params: Params,
               explicit: str | None = None) -> ResidualCodec | NeuralCodec:
    """The codec the shards were tokenised with (or ``explicit``), checked by version against the
    shard index."""
    url = explicit or codec_url(shards)
    if not storage.exists(url, params.storage):
        raise CodecNotFound(shards, f"no {CODEC_FILE} found ({url}); pass codec_path")
    local = Path(url)
    if storage.is_remote(url):  # the artifact is a .npz + .json pair: fetch both
        local = Path(tempfile.mkdtemp(prefix="imagintalk-codec-")) / CODEC_FILE
        for suffix in (".npz", ".json"):
            local.with_suffix(suffix).write_bytes(storage.read_bytes(url.removesuffix(".npz") + suffix, params.storage))
    codec = load_codec(local, params)
    if expected_version and codec.version != expected_version:
        raise CodecNotFound(url, f"codec version {codec.version[:12]} is not the shards' {expected_version[:12]}")
    return codec
