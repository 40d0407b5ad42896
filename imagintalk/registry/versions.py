"""Finding registered model versions by number, alias or "latest", one way for every caller.

Stages that build on other stages (the error detector on the lip aligner, the style-DiT on the
unit BERT) and the composite model pin their inputs with the same small grammar:
``"latest"`` (highest version number), ``"7"`` (that version) or ``"@champion"`` (an alias).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from imagintalk.errors import RegistryError  # one taxonomy (imagintalk.errors); callers import it from here too

LATEST = "latest"


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version and what it was made from (returned by every train_<stage>)."""

    name: str
    version: str
    run_id: str | None
    data_version: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_mlflow(cls, mv: ModelVersion, metrics: dict[str, float] | None = None) -> RegisteredVersion:
        tags = dict(mv.tags or {})
        return cls(name=mv.name, version=str(mv.version), run_id=mv.run_id,
                   data_version=tags.get("data.version", ""), metrics=dict(metrics or {}), tags=tags)


def all_versions(c: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (an unknown model has none)."""
    try:
        found = c.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda mv: int(mv.version))


def alias_version(c: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def resolve_version(c: MlflowClient, name: str, pin: str | int | None = LATEST) -> ModelVersion:
    """The version ``pin`` designates; RegistryError naming the model when there is none."""
    pin = LATEST if pin in (None, "") else str(pin)
    if pin.startswith("@"):
        mv = alias_version(c, name, pin[1:])
        if mv is None:
            raise RegistryError(f"models:/{name}", f"no version has alias '{pin[1:]}'")
        return mv
    if pin == LATEST:
        versions = all_versions(c, name)
        if not versions:
            raise RegistryError(f"models:/{name}", "no registered version (train that stage first)")
        return versions[-1]
    try:
        return c.get_model_version(name, pin)
    except MlflowException as exc:
        raise RegistryError(f"models:/{name}/{pin}", "no such registered version") from exc


def version_tags(mv: ModelVersion) -> dict[str, str]:
    return dict(mv.tags or {})
