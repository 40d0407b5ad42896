"""Typed configuration of the pretrained-component catalogue (params.yaml ``pretrained``): where
pulled weight files live on this machine, and entries added or overridden without code (see
imagintalk/pretrained/catalog.py). Kept apart from imagintalk/config.py, which re-exports these
classes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from imagintalk.sections import Section

ComponentKind = Literal["unit_extractor", "codec", "visual_encoder", "asr_judge", "speaker_encoder",
                        "naturalness_judge", "sync_judge"]
# the catalogue entries the always-on judges and the shards' speaker embedding default to: the copies
# that ship in the resemblyzer and speechmos wheels (imagintalk/pretrained/catalog.py)
DEFAULT_SPEAKER_ENCODER = "resemblyzer-ge2e"
DEFAULT_NATURALNESS_JUDGE = "dnsmos-p808"


class ComponentSpec(Section):
    """A params entry of the pretrained catalogue (imagintalk/pretrained/catalog.py): a new component
    (``kind`` and ``url`` required) or an override of a built-in one (only the fields given change,
    e.g. ``url`` for a mirror)."""

    kind: ComponentKind | None = None
    url: str | None = None
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    size: int | None = Field(None, ge=0)
    filename: str | None = Field(None, pattern=r"^[^/\\]+$")
    architecture: str | None = None          # e.g. torchaudio.models.hubert_base
    config: dict[str, Any] | None = None     # keyword arguments of the architecture's builder
    licence: str | None = None
    bundled: str | None = None               # "package:path/in/package" of a copy shipped in a wheel


class PretrainedConfig(Section):
    """Where pulled weights live on this machine, and catalogue entries added without code."""

    # $IMAGINTALK_PRETRAINED_CACHE overrides it (imagintalk/pretrained/cache.py)
    cache_dir: str = "~/.cache/imagintalk/pretrained"
    components: dict[str, ComponentSpec] = Field(default_factory=dict)
