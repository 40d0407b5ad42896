"""Reading an upstream weight file: one place that turns "torch cannot read this" into the
one-line error that names the file (every in-tree re-implementation of an upstream architecture
— DAC, auto_avsr, SyncNet — refuses a foreign file the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from imagintalk.errors import ArtifactError


def read_weights(path: str | Path, refuse: str) -> Any:
    """``torch.load`` of ``path`` on the CPU, tensors and plain containers only (weights_only);
    an unreadable file is an ArtifactError naming it: ``refuse`` (what the file should have been)
    and the reason."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure: torch raises many kinds
        raise ArtifactError(Path(path), f"{refuse}: unreadable ({exc.__class__.__name__})") from None
