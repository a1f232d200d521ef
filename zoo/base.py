"""The base LightningModule of every system: config saving, optimiser wiring, and per-item evaluation results.

What every system shares, whatever its items are (episodes, BO runs, target domains, target tasks):

* ``save_config()``: the constructor arguments as hyper-parameters that load with ``torch.load(weights_only=True)``;
* injected ``optimizer`` / ``scheduler`` callables (LightningCLI's ``OptimizerCallable`` / ``LRSchedulerCallable``),
  ``parameter_groups()`` (per-group ``lr_scale``) and ``configure_optimizers``;
* ``report_items()``: the one place that gathers per-item results across ranks, drops DDP's padding duplicates by
  item index and logs mean +- 95% CI, so no system computes an interval its own way and no padded item counts twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

from zoo.metrics import mean_ci95

_PRIMITIVE = (bool, int, float, str, type(None), list, tuple, dict)


def dedupe_by_index(index: torch.Tensor, values: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Keep each item index once, sorted by index: ``values[name][i]`` belongs to item ``index[i]``.

    DDP's samplers pad every rank to the same count by repeating a few items; after a gather those repeats sit
    beside the originals with the same index (and the same values), so keeping the first of each index gives
    exactly the single-process set.
    """
    index = index.reshape(-1)
    for name, v in values.items():
        if v.shape[0] != index.numel():
            raise ValueError(f"per-item {name!r} has {v.shape[0]} rows for {index.numel()} item indices")
    order = torch.argsort(index, stable=True)
    index = index[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return index[keep], {name: v[order][keep] for name, v in values.items()}


class ZooModule(pl.LightningModule):
    """Base class of every system; see the module docstring.

    Args:
        optimizer: a callable building the optimiser from parameter groups (LightningCLI ``OptimizerCallable``).
        scheduler: optional learning-rate scheduler callable, stepped every ``scheduler_interval`` (``"epoch"``
            here; a module with manual optimisation steps it itself).
    """

    scheduler_interval = "epoch"
    plateau_monitor: str | None = None  # what a ReduceLROnPlateau scheduler watches (e.g. ``"val/acc"``)

    def __init__(self, optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    # -- config --------------------------------------------------------------------------------------------------
    def save_config(self) -> None:
        """Save the constructor arguments as hyper-parameters that load with ``torch.load(weights_only=True)``.

        Call it at the end of a subclass's ``__init__``. Built by LightningCLI, the arguments arrive as the parsed
        config (injected modules as class_path dicts), which is what ``load_from_checkpoint`` needs to rebuild
        them. Built in Python, injected modules and callables are objects that cannot be stored safely: an
        injected ``nn.Module`` that records its own constructor arguments (an ``init_args`` dict of plain values,
        as :class:`zoo.nap.NAPNetwork` does) is stored as its ``class_path``/``init_args`` and rebuilt on load;
        other objects are left out (pass them again when loading).
        """
        frame = inspect.currentframe().f_back
        if _given_hyperparameters.get() is not None:
            self.save_hyperparameters(frame=frame)
            return
        args = inspect.getargvalues(frame).locals
        ignore, described = [], {}
        for k, v in args.items():
            if k in ("self", "__class__") or isinstance(v, _PRIMITIVE):
                continue
            spec = getattr(v, "init_args", None)
            if isinstance(v, torch.nn.Module) and isinstance(spec, dict):
                described[k] = {"class_path": f"{type(v).__module__}.{type(v).__qualname__}", "init_args": dict(spec)}
            else:
                ignore.append(k)
        if not described:
            self.save_hyperparameters(ignore=ignore, frame=frame)
            return
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

        # Stored as LightningCLI would store them, so load_from_checkpoint rebuilds the described modules through
        # the same (allow-listed) instantiator.
        given = {k: v for k, v in args.items() if k not in ("self", "__class__") and k not in ignore}
        given.update(described)
        with _given_hyperparameters_context(given, "lightning.pytorch.cli.instantiate_module"):
            self.save_hyperparameters(frame=frame)

    # -- what a training step logged -----------------------------------------------------------------------------
    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """``LightningModule.log``, also keeping this training step's ``train/*`` values in ``step_terms`` so that
        :class:`callbacks.NonFiniteLoss` can name the loss terms that were not finite (``log_dict`` calls this)."""
        if name.startswith("train/") and self._trainer is not None and self.trainer.training:
            self.__dict__.setdefault("step_terms", {})[name] = value
        super().log(name, value, *args, **kwargs)

    # -- per-item evaluation results -----------------------------------------------------------------------------
    def report_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor],
                     ci: Iterable[str] = (), count_name: str = "items", prog_bar: bool = False
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Gather per-item results from every rank, drop DDP padding duplicates, log mean +- 95% CI.

        Args:
            stage: log prefix (``"val"``, ``"test"``).
            index: ``[n]`` this rank's item indices (episode, BO run, domain, task).
            values: ``name -> [n, ...]`` per-item results. Each one-value-per-item entry is logged as its mean,
                ``<stage>/<name>``; entries of more values per item (a regret curve) are only returned.
            ci: names whose 95% half-width (``zoo.metrics.mean_ci95``) is also logged, as ``<stage>/<name>_ci95``.
            count_name: the number of distinct items is logged as ``<stage>/<count_name>``.
            prog_bar: show the logged means in the progress bar.
        Returns:
            ``(index, values)`` on the CPU, one row per distinct item, sorted by index; identical on every rank.
            Nothing is logged while Lightning runs its sanity check.
        """
        index = index.reshape(-1)
        n = index.numel()
        gathered_index = self.all_gather(index).reshape(-1)  # [world * n]; a no-op on one process
        world = gathered_index.numel() // max(n, 1)
        gathered = {}
        for name, v in values.items():
            g = self.all_gather(v)
            gathered[name] = g.reshape(world * v.shape[0], *v.shape[1:]) if world > 1 else g
        index, rows = dedupe_by_index(gathered_index.cpu(), {k: v.detach().cpu() for k, v in gathered.items()})
        if self._trainer is None or self.trainer.sanity_checking:
            return index, rows
        ci = set(ci)
        unknown = ci - set(rows)
        if unknown:
            raise ValueError(f"report_items: ci names {sorted(unknown)} are not among the values {sorted(rows)}")
        metrics: dict[str, float] = {}
        for name, v in rows.items():
            if v.dim() != 1:
                continue
            mean, half = mean_ci95(v)
            metrics[f"{stage}/{name}"] = mean
            if name in ci:
                metrics[f"{stage}/{name}_ci95"] = half
        metrics[f"{stage}/{count_name}"] = float(index.numel())
        # every rank holds the same gathered rows, so every rank logs the same numbers (ModelCheckpoint needs them)
        self.log_dict(metrics, prog_bar=prog_bar, sync_dist=True, batch_size=index.numel())
        return index, rows

    # -- optimisation --------------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """The trainable parameters as optimiser groups; a group's ``lr_scale`` multiplies the configured lr.

        One group by default; a system whose parts learn at different rates overrides this (RAML's fusion block).
        """
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([g for g in self.parameter_groups() if g["params"]])
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if self.plateau_monitor is None:
                raise ValueError(f"{type(self).__name__} has no metric for ReduceLROnPlateau to monitor; "
                                 f"choose another scheduler")
            config["monitor"] = self.plateau_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
