"""A non-finite training loss stops the run with an error that says where and what, instead of training on.

Before this, ``--model.init_args.temperature 1e-300`` made every loss NaN and the run still exited 0, saved a
"best" checkpoint and reported chance accuracy. :class:`NonFiniteLoss`, which the ``zoo`` command adds to every
trainer (``--on_nonfinite_loss``), looks at each loss just before its backward pass:

* ``fail`` (default): raise :class:`NonFiniteLossError` naming the epoch, batch and global step, the logged loss
  terms that are not finite (``train/<name>`` values the step logged, :meth:`zoo.training.base.ZooModule.log`) and the last
  finite loss; the weights are not updated by that step;
* ``skip``: drop that step's update (every gradient is set to None just before the optimiser step, so no parameter
  and no optimiser state moves) and count it; the progress line (:class:`callbacks.EpochProgress`) then shows the
  epoch's mean loss as ``nan``, so the skipped steps stay visible.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

ACTIONS = ("fail", "skip")


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite (the message names the step, the terms and the last finite loss)."""


def _value(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean()) if v.numel() else None
    return float(v) if isinstance(v, (int, float)) else None


class NonFiniteLoss(pl.Callback):
    """Fail on (or skip) a training step whose loss is NaN or infinite; see the module docstring.

    Args:
        action: ``"fail"`` or ``"skip"``.
    """

    def __init__(self, action: str = "fail"):
        if action not in ACTIONS:
            raise ValueError(f"NonFiniteLoss: action must be one of {ACTIONS}, got {action!r}")
        self.action = action
        self.skipped = 0
        self.last_finite: tuple[float, int] | None = None  # (loss, global step)
        self._skip_step = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch_idx = batch_idx
        if hasattr(pl_module, "step_terms"):
            pl_module.step_terms.clear()

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        value = _value(loss)
        if value is None or math.isfinite(value):
            if value is not None:
                self.last_finite = (value, trainer.global_step)
            return
        if self.action == "skip":
            self._skip_step = True
            return
        raise NonFiniteLossError(self.describe(trainer, pl_module, value))

    def describe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, value: float) -> str:
        """The error message for a non-finite loss ``value`` at the current step."""
        terms = {k: _value(v) for k, v in getattr(pl_module, "step_terms", {}).items()}
        bad = [f"{k}={v}" for k, v in terms.items() if v is not None and not math.isfinite(v)] or [f"loss={value}"]
        last = (f"the last finite loss was {self.last_finite[0]:.6g} at global step {self.last_finite[1]}"
                if self.last_finite else "no earlier step had a finite loss")
        return (f"non-finite training loss at epoch {trainer.current_epoch}, batch {getattr(self, '_batch_idx', '?')}"
                f" (global step {trainer.global_step}): {', '.join(bad)}; {last}. The weights were not updated "
                f"with it. Look for a too-high learning rate, a temperature or scale near 0 or overflow, or bad "
                f"input; --on_nonfinite_loss=skip skips such steps instead of stopping.")

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if not self._skip_step:
            return
        self._skip_step = False
        self.skipped += 1
        # Optimisers skip parameters without a gradient: no update and no change to their moments.
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        if self.skipped == 1:  # once: the progress line and metrics show the rest
            rank_zero_warn(f"skipping training steps with a non-finite loss (--on_nonfinite_loss=skip); the first "
                           f"at epoch {trainer.current_epoch}, global step {trainer.global_step}")
