"""Training state on disk: what a killed job needs to continue on the exact same trajectory.

A checkpoint directory holds, from rank 0, the model (unwrapped from DDP), optimizer and LR
scheduler state, the exponential moving average of the weights when the stage keeps one
(``ema.pt``: the averaged state dict and how many steps it averaged), plus
``state.json`` (step, the params hash it was written under); and from every
rank ``rank-<r>.pt``: that rank's data position (epoch, batches consumed in it) and its RNG
states (torch, numpy, python). Ray Train merges the per-rank directories into one checkpoint.

Resuming rebuilds the epoch's loader from its seed, skips the batches already consumed, and only
then restores the RNG states, so the next batch and every random draw of the next step (masking,
diffusion time steps, dropout) are the ones the uninterrupted run made.
"""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imagintalk.errors import ArtifactError

MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
EMA_FILE = "ema.pt"
STATE_FILE = "state.json"


@dataclass
class DataPosition:
    """Where one rank is in its data stream."""

    epoch: int = 0
    batch_in_epoch: int = 0


@dataclass
class TrainState:
    """Global progress (the same on every rank)."""

    step: int = 0
    params_hash: str = ""
    stage: str = ""


def rank_file(rank: int) -> str:
    return f"rank-{rank}.pt"


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def save_checkpoint(directory: Path, rank: int, state: TrainState, position: DataPosition,
                    module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler,
                    ema: torch.optim.swa_utils.AveragedModel | None = None) -> None:
    """Write this rank's part of a checkpoint into ``directory`` (rank 0 adds the shared part)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"position": asdict(position), "rng": capture_rng()}, directory / rank_file(rank))
    if rank == 0:
        torch.save(module.state_dict(), directory / MODEL_FILE)
        torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)
        torch.save(scheduler.state_dict(), directory / SCHEDULER_FILE)
        if ema is not None:
            torch.save({"model": ema.module.state_dict(), "n_averaged": int(ema.n_averaged)}, directory / EMA_FILE)
        (directory / STATE_FILE).write_text(json.dumps(asdict(state), sort_keys=True))


def _read(path: Path, weights_only: bool = False) -> Any:
    """One checkpoint file; a missing, truncated or foreign file is an ArtifactError naming it."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise ArtifactError(path, f"unreadable checkpoint file ({exc.__class__.__name__})") from exc


def read_state(directory: Path) -> TrainState:
    return TrainState(**_read(directory / STATE_FILE))


def load_model_state(directory: Path, module: torch.nn.Module, averaged: bool = False) -> None:
    """The trained weights; ``averaged``: the moving average where the checkpoint has one (what a
    finished stage registers), else the last step's."""
    if averaged and (directory / EMA_FILE).exists():
        module.load_state_dict(_read(directory / EMA_FILE, weights_only=True)["model"])
        return
    module.load_state_dict(_read(directory / MODEL_FILE, weights_only=True))


def load_checkpoint(directory: Path, rank: int, module: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    ema: torch.optim.swa_utils.AveragedModel | None = None,
                    ) -> tuple[TrainState, DataPosition, dict[str, Any] | None]:
    """Load the shared state into module/optimizer/scheduler; return progress, this rank's data
    position and RNG states (None when the checkpoint came from a smaller worker group: the rank
    then starts its epoch from the beginning with fresh randomness)."""
    load_model_state(directory, module)
    optimizer.load_state_dict(_read(directory / OPTIMIZER_FILE))
    scheduler.load_state_dict(_read(directory / SCHEDULER_FILE))
    if ema is not None:
        if not (directory / EMA_FILE).exists():
            raise ArtifactError(directory, f"no {EMA_FILE}: the checkpoint was written without a moving average "
                                           "(train.stage_ema changed since; start a fresh run with train.run_suffix)")
        saved = _read(directory / EMA_FILE, weights_only=True)
        ema.module.load_state_dict(saved["model"])
        ema.n_averaged.fill_(saved["n_averaged"])
    state = read_state(directory)
    path = directory / rank_file(rank)
    if not path.exists():
        return state, DataPosition(), None
    mine = _read(path)
    return state, DataPosition(**mine["position"]), mine["rng"]
