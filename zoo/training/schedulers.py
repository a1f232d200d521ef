"""Learning-rate schedules that configs can name by ``class_path`` (LightningCLI ``LRSchedulerCallable``)."""

from __future__ import annotations

import torch


class WarmupLinearDecay(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up from 0 over ``warmup_steps``, then linear decay to 0 at ``total_steps``.

    This is ``get_linear_schedule_with_warmup`` (Hugging Face), which NAP's official ``ppo_nap.py`` steps once per
    PPO iteration: factor ``s / warmup_steps`` while ``s < warmup_steps``, then
    ``(total_steps - s) / (total_steps - warmup_steps)`` floored at 0. ``total_steps = 0`` keeps the rate constant
    after the warm-up. A "step" is one ``scheduler.step()`` call: per epoch for automatic optimisation
    (``ZooModule.scheduler_interval``), per PPO iteration in :class:`zoo.methods.nap.NAPModule`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 0, total_steps: int = 0,
                 last_epoch: int = -1):
        if warmup_steps < 0 or total_steps < 0:
            raise ValueError(f"warmup_steps and total_steps must be >= 0, got {warmup_steps}, {total_steps}")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate after ``step`` scheduler steps."""
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        if self.total_steps <= 0:
            return 1.0
        return max(0.0, float(self.total_steps - step) / float(max(1, self.total_steps - self.warmup_steps)))
