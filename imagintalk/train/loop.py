"""The one ``train_loop_per_worker`` every model stage runs under Ray Train.

A stage is only a module with ``loss(batch) -> (loss, metrics)`` (see
:mod:`imagintalk.train.stages`); this loop owns everything around it: seeding, DDP through
``ray.train.torch.prepare_model`` (gloo on CPU, NCCL on GPU), this rank's part of the shards via
the loader's ``(shard_index, num_shards) = (world_rank, world_size)``, AdamW with linear warm-up,
per-step metrics to MLflow from rank 0 (the V2 trainer refuses the MLflow callback), a checkpoint
every ``checkpoint_every`` steps through ``ray.train.report``, and an exact resume from
``ray.train.get_checkpoint()``.

Epoch ``e`` of a rank reads a loader built with seed ``loader.seed + e * EPOCH_SEED_STRIDE``, so a
resumed rank rebuilds the same epoch and skips what it had already consumed; the loader draws
from its own seeded generators, never from the global RNGs the model uses.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imagintalk.config import LoaderConfig, StorageConfig, TrainConfig
from imagintalk.errors import DataError
from imagintalk.train.checkpoint import (
    DataPosition,
    TrainState,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
)

log = logging.getLogger(__name__)

# Epoch seeds are spaced wider than any world size, because the loader adds the rank to its seed.
EPOCH_SEED_STRIDE = 1_000_003
# Per-rank seeds for the stochastic parts of training (masking, dropout), after a shared init.
RANK_SEED_OFFSET = 1


class InjectedFailure(RuntimeError):
    """The ``train.fail_at_step`` test hook: a crash standing in for a killed node."""


@dataclass
class LoopConfig:
    """Everything a worker needs, as picklable data (sent once by the driver)."""

    stage: str
    shards: str
    model_cfg: dict[str, Any]
    train: dict[str, Any]
    loader: dict[str, Any]
    storage: dict[str, Any]
    max_steps: int
    params_hash: str
    tracking_uri: str
    run_id: str
    deps: dict[str, nn.Module] = field(default_factory=dict)


class LossModule(nn.Module):
    """Routes ``forward`` to the stage's ``loss`` so DDP's gradient hooks see every step."""

    def __init__(self, stage_module: nn.Module):
        super().__init__()
        self.stage = stage_module

    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.stage.loss(batch)


def warmup_schedule(warmup_steps: int):
    """Linear warm-up then constant: a schedule that does not depend on max_steps, so a run can
    be resumed and extended without changing the learning rate it already followed."""
    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return factor


def moving_average(module: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``module``'s weights and buffers (None when ``decay`` is 0).

    Why: a stage trained at a constant learning rate (the schedule does not depend on max_steps,
    so runs can be extended) ends wherever its last steps left it; on unseen speakers the
    expression model's window accuracy swung 0.77-0.89 between checkpoints 500 steps apart, and
    the average of the weights holds the trend instead (results/README.md, "Expression")."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def epoch_batches(lc: LoopConfig, epoch: int, rank: int, world: int) -> Iterator[dict[str, Any]]:
    """This rank's batches of epoch ``epoch`` (a fresh, seeded loader per epoch)."""
    from imagintalk.data.loader import make_loader

    cfg = LoaderConfig.model_validate(lc.loader)
    cfg = cfg.model_copy(update={"seed": cfg.seed + epoch * EPOCH_SEED_STRIDE})
    loader = make_loader(lc.shards, "train", True, cfg, shard_index=rank, num_shards=world,
                         storage_cfg=StorageConfig.model_validate(lc.storage))
    return iter(loader)


def mean_over_ranks(value: float, device: torch.device) -> float:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


class MetricSink:
    """Rank 0's buffered per-step metrics → MLflow, flushed every ``log_every`` steps."""

    def __init__(self, lc: LoopConfig, log_every: int, active: bool):
        self.active, self.log_every, self.buffer = active, max(1, log_every), []
        self.run_id = lc.run_id
        self.client = None
        if active:
            from imagintalk.registry import tracking

            self.client = tracking.client(lc.tracking_uri)

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.active:
            return
        self.buffer.append((step, dict(metrics)))
        if len(self.buffer) >= self.log_every:
            self.flush()

    def flush(self) -> None:
        if not self.active or not self.buffer:
            return
        from imagintalk.registry import tracking

        for step, metrics in self.buffer:
            tracking.log_step_metrics(self.client, self.run_id, metrics, step)
        self.buffer.clear()


def _report(step: int, metrics: Mapping[str, float], rank: int, state: TrainState, pos: DataPosition,
            module: nn.Module, opt: torch.optim.Optimizer, sched: Any, ema: Any) -> None:
    import ray.train

    with tempfile.TemporaryDirectory(prefix="imagintalk-ckpt-") as tmp:
        save_checkpoint(Path(tmp), rank, state, pos, module, opt, sched, ema)
        ray.train.report({"step": step, **metrics}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point shared by every stage (``config["loop"]`` is a :class:`LoopConfig`)."""
    import ray.train
    import ray.train.torch

    from imagintalk.models.config import ModelConfig
    from imagintalk.train.stages import build_stage

    lc: LoopConfig = config["loop"]
    tcfg = TrainConfig.model_validate(lc.train)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    seed_everything(tcfg.seed)  # the same initial weights on every rank
    module = build_stage(lc.stage, ModelConfig.model_validate(lc.model_cfg), lc.deps).to(device)
    trainable = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(tcfg.warmup_steps))
    ema = moving_average(module, tcfg.stage_ema.get(lc.stage, 0.0))
    state, pos, rng = TrainState(step=0, params_hash=lc.params_hash, stage=lc.stage), DataPosition(), None

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state, pos, rng = load_checkpoint(Path(d), rank, module, opt, sched, ema)
        log.info("rank %d resumed %s at step %d (epoch %d, batch %d)", rank, lc.stage, state.step,
                 pos.epoch, pos.batch_in_epoch)
    else:
        seed_everything(tcfg.seed + RANK_SEED_OFFSET + rank)
    fail_at = tcfg.fail_at_step if checkpoint is None else None

    model = ray.train.torch.prepare_model(LossModule(module),
                                          parallel_strategy_kwargs={"find_unused_parameters": True})
    model.train()
    sink = MetricSink(lc, tcfg.log_every, active=rank == 0)
    last: dict[str, float] = {}
    autocast = tcfg.stage_autocast.get(lc.stage)
    while state.step < lc.max_steps:
        batches = epoch_batches(lc, pos.epoch, rank, world)
        batches = itertools.islice(batches, pos.batch_in_epoch, None)
        if rng is not None:  # after the skip: the skipped batches must not consume model randomness
            restore_rng(rng)
            rng = None
        seen = False
        for batch in batches:
            seen = True
            if fail_at is not None and state.step + 1 == fail_at:
                sink.flush()
                raise InjectedFailure(f"train.fail_at_step={fail_at}: injected crash before step {fail_at}")
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast is not None):
                loss, metrics = model(to_device(batch, device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, tcfg.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(module)
            state.step += 1
            pos.batch_in_epoch += 1
            last = {**{k: float(v) for k, v in metrics.items()},
                    "loss": mean_over_ranks(float(loss.detach()), device),
                    "lr": float(sched.get_last_lr()[0]), "epoch": float(pos.epoch)}
            sink.add(state.step, last)
            if state.step % tcfg.checkpoint_every == 0 or state.step >= lc.max_steps:
                sink.flush()
                _report(state.step, last, rank, state, pos, module, opt, sched, ema)
            if state.step >= lc.max_steps:
                break
        else:
            if not seen and pos.batch_in_epoch == 0:
                raise DataError(lc.shards, f"rank {rank}/{world}: no training batches in the train split")
            pos = DataPosition(epoch=pos.epoch + 1, batch_in_epoch=0)
    sink.flush()
