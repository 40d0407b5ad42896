"""The base of every typed params section: frozen, and unknown keys refused (a typo in
params.yaml is a clear error rather than a silently ignored setting)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
