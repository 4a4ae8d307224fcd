"""Pieces every training stage shares: finite-loss guard, checkpoint specs, per-step reseeding, the optimiser,
the run report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from ramos.utils.spec import spec_of

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    """Where and how Lightning runs a stage's training: the ``trainer`` section of every stage config,
    also set for all stages at once by ``ramos pipeline`` and ``ramos train`` (``--accelerator``,
    ``--devices``, ``--strategy``, ``--precision``, ``--num-nodes``).

    Attributes:
        accelerator: ``cpu``, ``gpu`` (``cuda``), ``mps`` or ``auto`` (a GPU when there is one).
        devices: processes per node (GPUs, or CPU processes with ``strategy: ddp``).
        num_nodes: machines (Lightning reads the cluster from SLURM or torchrun's variables).
        strategy: ``auto``, ``ddp`` (one process per device; on CPU its gloo backend), ``ddp_spawn``...
        precision: ``32-true``, ``bf16-mixed`` (GPUs since Ampere), ``16-mixed``.
    """

    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"

    def __post_init__(self) -> None:
        # Checked here, so that a typo is a one-line error before any data is read, not a
        # traceback from inside Lightning once the stage has loaded everything.
        import typing

        from lightning.fabric.connector import _PRECISION_INPUT_STR
        from lightning.pytorch.accelerators import AcceleratorRegistry
        from lightning.pytorch.strategies import StrategyRegistry

        from ramos.utils.config import ConfigError

        choices = {"accelerator": {"auto", "gpu", *AcceleratorRegistry.available_accelerators()},
                   "strategy": {"auto", *StrategyRegistry.available_strategies()},
                   "precision": {*typing.get_args(_PRECISION_INPUT_STR), "32", "16", "bf16", "64"}}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"trainer.{name}: {getattr(self, name)!r} is not one of Lightning's "
                                  f"({', '.join(sorted(map(str, allowed)))})")
        for name in ("devices", "num_nodes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name}: {getattr(self, name)!r}, expected a whole number >= 1")

    def kwargs(self, routed: bool = False) -> dict[str, Any]:
        """The ``lightning.Trainer`` keyword arguments. ``routed``: the module leaves some parameters
        unused in a step (the motion networks route each window to its length range's branch), which
        DDP must be told to look for."""
        strategy = self.strategy
        if routed and strategy == "ddp":
            strategy = "ddp_find_unused_parameters_true"
        return {"accelerator": self.accelerator, "devices": self.devices, "num_nodes": self.num_nodes,
                "strategy": strategy, "precision": self.precision}


def global_rank() -> int:
    """This process's rank among the training processes (0 unless Lightning's DDP launcher, torchrun or
    SLURM started it as another rank): code that writes results runs on rank 0 only."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def save_final_checkpoint(trainer: L.Trainer, path: str | os.PathLike[str]) -> None:
    """Save ``trainer``'s checkpoint at ``path`` atomically, from every rank at once: all ranks take
    part in saving (a collective under DDP), rank 0 writes a temporary file and renames it into place."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        os.replace(tmp, final)
    trainer.strategy.barrier()


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss becomes NaN/inf, so that no NaN checkpoint is ever written."""


def check_finite(loss: torch.Tensor, stage: str, step: int) -> None:
    """Stop training with a clear message when ``loss`` is not finite.

    Raising inside the step aborts ``Trainer.fit`` before the checkpoint callback runs, so the
    last checkpoint on disk is the last good one.
    """
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"{stage}: loss became {loss.item()} at step {step}; stopping before writing a checkpoint "
            "(lower the learning rate, or check the data for NaN/inf)"
        )


def store_specs(checkpoint: dict[str, Any], **nets: nn.Module) -> None:
    """Record how to rebuild each injected network inside a Lightning checkpoint."""
    checkpoint["ramos_specs"] = {name: spec_of(net) for name, net in nets.items()}


def read_specs(checkpoint: dict[str, Any], path: str, *names: str) -> dict[str, dict[str, Any]]:
    """The network specs of a checkpoint written by a RaMoS stage (clear error otherwise)."""
    from ramos.utils.checkpoint import CheckpointError

    specs = checkpoint.get("ramos_specs")
    if not isinstance(specs, dict) or any(n not in specs for n in names):
        raise CheckpointError(f"{path}: not a RaMoS checkpoint of this stage (missing network specs {list(names)})")
    return specs


class SeedEachStep(L.Callback):
    """Reseed every random generator before each training step from (seed, global step, rank).

    Lightning restores weights, optimiser and loop state on resume, but not the global RNG, so a
    resumed run would draw different noise (reparameterisation, diffusion timesteps, label
    dropout) than an uninterrupted one; DataLoader iterators also consume the global RNG at
    creation, at a point that differs between a fresh and a restarted epoch. Reseeding per step
    makes the two runs identical; shuffling must depend on the epoch only (a sampler with
    ``set_epoch``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        import random

        import numpy as np

        value = (self.seed * 1_000_003 + trainer.global_step * 1_009 + trainer.global_rank) % 2**31
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


def adamw_cosine(module: L.LightningModule, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> Any:
    """What every RaMoS training returns from ``configure_optimizers``: fused AdamW, with the learning rate
    decayed by a cosine to 5 % over the run (per step); AdamW alone outside a Trainer.

    Fused: one kernel per step instead of a dozen per tensor (on 2 CPU cores, 1.5 ms instead of 7.6 ms
    per step for the 2M-parameter motion denoiser: a fifth of a training step).
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if module._trainer is None:
        return opt
    total = max(1, int(module.trainer.estimated_stepping_batches))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=lr * 0.05)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# What RunReport calls a run cut short, measured on the motion VAE (docs/motion_vae.md, "Training budgets").
MIN_STEPS = 500
"""Fewer optimiser steps than this: too few updates whatever the data size. The motion VAE's KL warm-up
alone is 500 steps; on the embedded set its val loss after 300 steps is still 22 % above that after 1,500,
and on a 60-clip set 32 steps left the val MPJPE at 269 mm (165 mm after 1,500)."""
MIN_PASSES = 1.0
"""Fewer passes over the training windows (steps x batch / windows) than this: part of the data was never
seen. A floor only: how many passes a set needs falls with its size (the embedded set: 32)."""
MAX_LATE_DROP = 0.05
"""The mean loss of the last 20 % of the run more than this (relative) below that of the 20 % before: still
falling. Measured on the validation loss of the motion VAE: runs to the default 1,500 steps 1.2-3.7 %
(embedded set, two 60-clip sets), cut short 5.4 % (wall-time limit at step 709) and 5.8 % (300 steps). A
cosine schedule flattens the end of any run, even a cut-short one (32 steps: 0.5-1 %), so this test
mostly catches time-limited runs and constant learning rates; the step and pass floors catch the rest."""


class RunReport(L.Callback):
    """What a training run did, and whether it looks cut short: give it to the Trainer and read
    :attr:`summary` after ``fit`` (also logged, and merged into ``summary_path`` as ``{"run": ...}``
    when given).

    The summary holds optimiser steps, epochs, wall seconds, the training windows (data size), passes
    over them (steps x batch size / windows), the batch size, the final train and val losses, why the
    run stopped, and ``warnings``: a list of sentences (each also a ``log.warning``), empty when the run
    looks converged. A run is flagged when it made fewer than ``min_steps`` steps or fewer than
    ``min_passes`` passes over the data, when the wall-time limit (Lightning's ``max_time``) stopped it
    before ``max_steps``, or when its validation loss (``val_key``, read after each validation; at
    least 5 of them) was still falling at the end: the mean of the last 20 % of the run more than
    ``max_late_drop`` (relative) below the mean of the 20 % before. The training loss is not used for
    the trend: on small sets it keeps falling long after the validation loss has settled (10 % over the
    last fifth of a finished 60-clip run). The final train loss is the mean of the last 5 % of the
    steps (the loss the training step returns, else ``train_key``).

    Any stage can use it::

        report = RunReport("motion diffusion", train_windows=len(train_split), batch_size=cfg.batch_size)
        trainer = L.Trainer(max_steps=..., max_time=..., callbacks=[..., report])
        trainer.fit(...)
        summary["run"] = report.summary        # or RunReport(..., summary_path=out / "summary.json")

    It needs validations on a step interval (``val_check_interval=N, check_val_every_n_epoch=None``)
    for the validation trend, and the module to log ``val_key``.
    """

    def __init__(self, name: str, train_windows: int, batch_size: int, *, min_steps: int = MIN_STEPS,
                 min_passes: float = MIN_PASSES, max_late_drop: float = MAX_LATE_DROP,
                 train_key: str = "train/loss", val_key: str = "val/loss",
                 summary_path: str | os.PathLike[str] | None = None) -> None:
        self.name, self.train_windows, self.batch_size = name, int(train_windows), int(batch_size)
        self.min_steps, self.min_passes, self.max_late_drop = min_steps, min_passes, max_late_drop
        self.train_key, self.val_key = train_key, val_key
        self.summary_path = summary_path
        self.train_curve: list[tuple[int, float]] = []
        self.val_curve: list[tuple[int, float]] = []
        self.summary: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._start = 0.0
        self._start_step = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self.train_curve, self.val_curve = [], []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            loss = trainer.callback_metrics.get(self.train_key)
        if loss is not None:
            self.train_curve.append((trainer.global_step, float(loss)))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.val_key)
        if not trainer.sanity_checking and value is not None:
            self.val_curve.append((trainer.global_step, float(value)))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.summary = self.report(trainer)
        self.warnings = list(self.summary["warnings"])
        s = self.summary
        log.info("%s: %d steps, %d epochs, %.0f s; %d training windows, batch %d: %.1f passes; final train loss %s, "
                 "val loss %s; stopped by %s", self.name, s["steps"], s["epochs"], s["wall_seconds"],
                 s["train_windows"], s["batch_size"], s["passes"], _fmt(s["train_loss"]), _fmt(s["val_loss"]),
                 s["stopped_by"])
        for w in self.warnings:
            log.warning("%s: %s", self.name, w)
        if self.summary_path is not None:
            _merge_json(self.summary_path, {"run": self.summary})

    def report(self, trainer: L.Trainer) -> dict[str, Any]:
        """The summary of the run so far (what :meth:`on_fit_end` stores)."""
        steps = int(trainer.global_step)
        passes = steps * self.batch_size / max(1, self.train_windows)
        stopped_by = _stopped_by(trainer)
        tail = [v for _, v in self.train_curve[-max(1, len(self.train_curve) // 20):]]
        drop = late_drop(self.val_curve) if len(self.val_curve) >= 5 else None
        warnings = []
        if steps < self.min_steps:
            warnings.append(f"only {steps} optimiser steps (fewer than {self.min_steps}): far from convergence; "
                            "raise the step budget")
        if passes < self.min_passes:
            warnings.append(f"only {passes:.2f} passes over the {self.train_windows} training windows: part of the "
                            "data was never seen; raise the step budget")
        if stopped_by == "max_time":
            warnings.append(f"stopped by the wall-time limit at step {steps} of {trainer.max_steps}; raise the time "
                            "limit or lower the step budget")
        if drop is not None and drop > self.max_late_drop:
            warnings.append(f"the validation loss was still falling at the end ({100 * drop:.1f} % lower over the last "
                            f"20 % of the run than over the 20 % before; finished runs: < "
                            f"{100 * self.max_late_drop:.0f} %): far from convergence; raise the step budget")
        return {
            "steps": steps, "steps_this_run": steps - self._start_step, "epochs": int(trainer.current_epoch),
            "wall_seconds": round(time.perf_counter() - self._start, 1), "train_windows": self.train_windows,
            "batch_size": self.batch_size, "passes": round(passes, 2),
            "train_loss": float(np.mean(tail)) if tail else None,
            "val_loss": self.val_curve[-1][1] if self.val_curve else None,
            "late_drop": None if drop is None else round(drop, 4),
            "stopped_by": stopped_by, "warnings": warnings,
            "val_curve": [[s, round(v, 6)] for s, v in self.val_curve],
        }


def late_drop(curve: list[tuple[int, float]]) -> float | None:
    """Relative drop of the mean loss from the 20 % of the run's steps before the last 20 % to the last 20 %
    (positive: still falling); None when either part holds no point."""
    if len(curve) < 2:
        return None
    first, last = curve[0][0], curve[-1][0]
    span = max(1, last - first)
    prev = [v for s, v in curve if last - 0.4 * span < s <= last - 0.2 * span]
    tail = [v for s, v in curve if s > last - 0.2 * span]
    if not prev or not tail:
        return None
    before = float(np.mean(prev))
    return (before - float(np.mean(tail))) / abs(before) if before else None


def _stopped_by(trainer: L.Trainer) -> str:
    """Why fit ended: ``max_steps``, ``max_epochs``, ``max_time`` (Lightning's Timer) or ``other`` (early stopping)."""
    from lightning.pytorch.callbacks import Timer

    if 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is not None and remaining <= 0:
        return "max_time"
    if trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch:
        return "max_epochs"
    return "other"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _merge_json(path: str | os.PathLike[str], update: dict[str, Any]) -> None:
    """Merge ``update`` into the JSON object at ``path`` (created when missing), atomically."""
    import json
    from pathlib import Path

    from ramos.utils.atomic import write_json

    p = Path(path)
    data = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    write_json(p, {**data, **update})
