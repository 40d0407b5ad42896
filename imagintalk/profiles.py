"""Corpus profiles: a corpus partition that is a variant of a recipe, with its own settings.

``synthtalk_large`` (the quality run) is SynthTalk with 40 speakers and more clips, and trained
with a bigger step budget: the same recipe, other params. A profile in params.yaml's ``corpora``
section names its recipe and overrides whole params sections field by field::

    corpora:
      synthtalk_large:
        recipe: synthtalk
        synth: {speakers: 40, clips_per_speaker: 24, val_speakers: 4, test_speakers: 4}
        train: {stage_steps: {style_dit: 4000}}

Every stage of that partition (CLI, DVC, Dagster) sees ``params.for_corpus("synthtalk_large")``;
the recipe (raw generation, the ingest scanner, the card) is the profile's ``recipe``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagintalk.conventions import CORPORA
from imagintalk.errors import ConfigError

if TYPE_CHECKING:
    from imagintalk.config import Params

RECIPE_KEY = "recipe"


def check_profiles(corpora: dict[str, dict[str, Any]], sections: set[str]) -> None:
    """Refuse a profile that shadows a corpus recipe, names an unknown recipe or section, or
    overrides a section with something other than a mapping (one line naming the profile)."""
    for name, profile in corpora.items():
        where = f"corpora.{name}"
        if name in CORPORA:
            raise ConfigError(where, f"name already used by the {name!r} corpus recipe; choose another name")
        if not isinstance(profile, dict):
            raise ConfigError(where, "must be a mapping with a recipe and section overrides")
        recipe = profile.get(RECIPE_KEY)
        if recipe not in CORPORA:
            raise ConfigError(f"{where}.{RECIPE_KEY}", f"unknown recipe {recipe!r} (choose from {', '.join(CORPORA)})")
        for section, values in profile.items():
            if section == RECIPE_KEY:
                continue
            if section not in sections or section in ("corpora", "extra"):
                raise ConfigError(f"{where}.{section}", "not a params section that a profile can override")
            if not isinstance(values, dict):
                raise ConfigError(f"{where}.{section}", "must be a mapping of the section's fields")


def recipe_of(params: Params, corpus: str) -> str:
    """The recipe behind a corpus partition (itself unless it is a profile)."""
    profile = params.corpora.get(corpus)
    return profile[RECIPE_KEY] if profile else corpus


def for_corpus(params: Params, corpus: str | None) -> Params:
    """``params`` with the profile of ``corpus`` applied (unchanged for a plain corpus)."""
    from pydantic import ValidationError

    profile = params.corpora.get(corpus or "")
    if not profile:
        return params
    data = params.model_dump()
    for section, values in profile.items():
        if section != RECIPE_KEY:
            data[section] = _merge(data[section], values)
    try:
        return type(params).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"corpora.{corpus}." + ".".join(str(p) for p in first["loc"]), first["msg"]) from exc


def profile_params(params: Params, corpus: str) -> Params:
    """``for_corpus`` for a partition named on the command line (``--corpus``): a corpus recipe or a
    profile; any other name is a ConfigError listing them (a typo must not run with the defaults)."""
    known = (*CORPORA, *params.corpora)
    if corpus not in known:
        raise ConfigError(corpus, f"unknown corpus partition (choose from {', '.join(known)})")
    return for_corpus(params, corpus)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return over
