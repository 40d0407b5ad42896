"""Pretrained components by name (HuBERT, EnCodec, Whisper, ...): a typed catalogue
(:mod:`~imagintalk.pretrained.catalog`) and a verified local cache backed by the storage root
(:mod:`~imagintalk.pretrained.cache`), so every stage and every Ray worker loads the same weights
by name. ``imagintalk models pull|list|publish`` is the command line."""

from imagintalk.pretrained.cache import cache_root, publish, pull, resolve
from imagintalk.pretrained.catalog import Component, catalogue, component, component_of_kind, with_component

__all__ = ["Component", "cache_root", "catalogue", "component", "component_of_kind", "publish", "pull", "resolve",
           "with_component"]
