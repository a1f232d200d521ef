"""The base LightningModule of every system: config saving, optimiser wiring, and the evaluation template.

What every system shares, whatever its items are (episodes, BO runs, target domains, target tasks):

* ``save_config()``: the constructor arguments as hyper-parameters that load with ``torch.load(weights_only=True)``;
* injected ``optimizer`` / ``scheduler`` callables (LightningCLI's ``OptimizerCallable`` / ``LRSchedulerCallable``),
  ``parameter_groups()`` (per-group ``lr_scale``) and ``configure_optimizers``;
* the evaluation template: ``validation_step`` / ``test_step`` hand each batch to the system's
  :meth:`ZooModule.evaluate_batch` (per-item results, each with its item index) and buffer them per stage; at the
  end of the stage the items are gathered from every rank and de-duplicated by index (:meth:`ZooModule.gather_items`),
  summarised by :meth:`ZooModule.summarise_items` (default: mean +- 95% CI of each one-value-per-item result,
  :meth:`ZooModule.log_items`) and kept, one dict per item, in ``records[stage]``. A system writes what it computes
  per batch and, if it reports more than means, how it summarises a stage; it writes no step or epoch-end dispatch;
* ``report_items()``: gather, de-duplicate and log in one call (the template's two halves), so no system computes an
  interval its own way and no DDP padding item counts twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

from zoo.training.metrics import mean_ci95

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

    #: What one evaluated item is: the key of its index in every ``records`` row (``"episode"``, ``"run"``, ...).
    item_key = "item"
    #: The number of distinct items evaluated is logged as ``<stage>/<count_name>``.
    count_name = "items"
    #: The per-item results whose 95% half-width the default summary also logs (``<stage>/<name>_ci95``).
    ci_names: tuple[str, ...] = ()
    #: The stages whose logged means the default summary shows in the progress bar.
    prog_bar_stages: tuple[str, ...] = ("val",)

    def __init__(self, optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        #: ``records[stage]``: one dict per evaluated item of the last evaluation of ``stage`` (``"val"``, ``"test"``
        #: and, for a stage of several dataloaders, each one's own name), sorted by item index: ``{item_key: index,
        #: <result>: value, ...}``. What ``callbacks.EpisodeTable`` and the benchmarks read.
        self.records: dict[str, list[dict[str, Any]]] = {}
        # stage -> dataloader index -> per-item result dicts of the batches evaluated so far
        self._eval_buffer: dict[str, dict[int, list[dict[str, torch.Tensor]]]] = {}
        self._eval_last_dataloader: dict[str, int] = {}

    # -- config --------------------------------------------------------------------------------------------------
    def save_config(self) -> None:
        """Save the constructor arguments as hyper-parameters that load with ``torch.load(weights_only=True)``.

        Call it at the end of a subclass's ``__init__``. Built by LightningCLI, the arguments arrive as the parsed
        config (injected modules as class_path dicts), which is what ``load_from_checkpoint`` needs to rebuild
        them. Built in Python, injected modules and callables are objects that cannot be stored safely: an
        injected ``nn.Module`` that records its own constructor arguments (an ``init_args`` dict of plain values,
        as :class:`zoo.methods.nap.NAPNetwork` does) is stored as its ``class_path``/``init_args`` and rebuilt on load;
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

    # -- the evaluation template: what a system provides -----------------------------------------------------------
    def evaluate_batch(self, batch: Any, batch_idx: int, stage: str) -> dict[str, torch.Tensor] | None:
        """Score one validation or test batch: ``{"index": [n] item indices, <result>: [n, ...], ...}``.

        Every entry holds one row per item of the batch (an episode, a BO run, a domain, a multiple-choice item);
        ``index`` identifies the item within the stage's fixed set (DDP's padding repeats an index, and the
        repeat is dropped). Return ``None`` when the batch completes no item (an item that spans batches, as a
        Meta-DMoE target domain, is returned with its last batch; see :meth:`finish_items`). ``stage`` is
        ``"val"`` or ``"test"``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define evaluate_batch(batch, batch_idx, stage), "
                                  "so it cannot be validated or tested")

    def finish_items(self, stage: str) -> dict[str, torch.Tensor] | None:
        """Items still open when a stage's batches end (a domain cut short by ``limit_*_batches``), as
        :meth:`evaluate_batch` returns them; default: none."""
        return None

    def summarise_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor]
                        ) -> list[dict[str, Any]]:
        """Log what a stage's evaluation reports and return its ``records`` rows.

        ``index`` / ``values``: every item of the stage once (gathered from all ranks, de-duplicated, sorted by
        index, on the CPU). Default: :meth:`log_items` (mean +- 95% CI) and :meth:`item_rows`. ``stage`` is the log
        prefix: ``"val"``, ``"test"`` or a dataloader's own name (:meth:`eval_set`).
        """
        self.log_items(stage, index, values, ci=self.ci_names, count_name=self.count_name,
                       prog_bar=stage.split("/")[0] in self.prog_bar_stages)
        return self.item_rows(index, values)

    def eval_set(self, stage: str, dataloader_idx: int) -> tuple[str, dict[str, Any]]:
        """The log prefix of a stage's dataloader and the fields its rows get in ``records[stage]``.

        Default: the stage itself for dataloader 0, ``<stage>/<index>`` (rows marked ``dataloader``) for others.
        A system evaluated on several fixed sets (GPAM: one per NOTA rate) names them here.
        """
        if dataloader_idx == 0:
            return stage, {}
        return f"{stage}/{dataloader_idx}", {"dataloader": dataloader_idx}

    def item_rows(self, index: torch.Tensor, values: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One dict per item: ``{item_key: index, name: value}``, a float for one value per item, else a list."""
        rows = []
        for i, item in enumerate(index.tolist()):
            row: dict[str, Any] = {self.item_key: int(item)}
            for name, v in values.items():
                row[name] = float(v[i]) if v.dim() == 1 else v[i].tolist()
            rows.append(row)
        return rows

    # -- the evaluation template: the dispatch every system shares --------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect("val", batch, batch_idx, dataloader_idx)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect("test", batch, batch_idx, dataloader_idx)

    def on_validation_epoch_start(self) -> None:
        self._eval_buffer.pop("val", None)  # what an interrupted evaluation left

    def on_test_epoch_start(self) -> None:
        self._eval_buffer.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._summarise_stage("val")

    def on_test_epoch_end(self) -> None:
        self._summarise_stage("test")

    def _collect(self, stage: str, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        items = self.evaluate_batch(batch, batch_idx, stage)
        self._eval_last_dataloader[stage] = dataloader_idx
        if items is not None:
            self._check_items(items)
            self._eval_buffer.setdefault(stage, {}).setdefault(dataloader_idx, []).append(items)

    def _check_items(self, items: dict[str, torch.Tensor]) -> None:
        name = type(self).__name__
        if not isinstance(items.get("index"), torch.Tensor):
            raise TypeError(f"{name}.evaluate_batch must return an 'index' tensor of item indices; got keys "
                            f"{sorted(items)}")
        n = items["index"].reshape(-1).numel()
        for key, v in items.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"{name}.evaluate_batch: {key!r} must be a tensor of one row per item, got "
                                f"{type(v).__name__}")
            if v.dim() == 0 or v.shape[0] != n:
                raise ValueError(f"{name}.evaluate_batch: {key!r} must hold one row per item ({n} items), got shape "
                                 f"{tuple(v.shape)}")

    def _summarise_stage(self, stage: str) -> None:
        pending = self.finish_items(stage)
        buffers = self._eval_buffer.pop(stage, {})
        if pending is not None:
            self._check_items(pending)
            buffers.setdefault(self._eval_last_dataloader.get(stage, 0), []).append(pending)
        if not buffers:
            return
        combined: list[dict[str, Any]] = []
        for dataloader_idx in sorted(buffers):
            batches = buffers[dataloader_idx]
            values = {k: self._concat(k, [b[k] for b in batches]) for k in batches[0]}
            index, values = self.gather_items(values.pop("index"), values)
            name, fields = self.eval_set(stage, dataloader_idx)
            rows = self.summarise_items(name, index, values)
            if name != stage:
                self.records[name] = rows
            combined += [{**r, **fields} for r in rows]
        self.records[stage] = combined

    def _concat(self, key: str, parts: list[torch.Tensor]) -> torch.Tensor:
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"{type(self).__name__}.evaluate_batch: {key!r} has rows of different shapes "
                             f"{sorted(shapes)} across batches; every item of a stage needs the same shape")
        return torch.cat(parts)

    # -- gathering and logging per-item results ---------------------------------------------------------------------
    def gather_items(self, index: torch.Tensor, values: dict[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Gather per-item results from every rank and drop DDP padding duplicates (:func:`dedupe_by_index`).

        Args:
            index: ``[n]`` this rank's item indices (episode, BO run, domain, task).
            values: ``name -> [n, ...]`` this rank's per-item results.
        Returns:
            ``(index, values)`` on the CPU, one row per distinct item, sorted by index; identical on every rank.
        """
        index = index.reshape(-1)
        n = index.numel()
        gathered_index = self.all_gather(index).reshape(-1)  # [world * n]; a no-op on one process
        world = gathered_index.numel() // max(n, 1)
        gathered = {}
        for name, v in values.items():
            g = self.all_gather(v)
            gathered[name] = g.reshape(world * v.shape[0], *v.shape[1:]) if world > 1 else g
        return dedupe_by_index(gathered_index.cpu(), {k: v.detach().cpu() for k, v in gathered.items()})

    def log_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor], ci: Iterable[str] = (),
                  count_name: str = "items", prog_bar: bool = False) -> None:
        """Log the mean of every one-value-per-item result as ``<stage>/<name>`` (entries of more values per item,
        a regret curve, are not logged), the 95% half-width (``zoo.training.metrics.mean_ci95``) of those named in ``ci`` as
        ``<stage>/<name>_ci95`` and the item count as ``<stage>/<count_name>``. ``index`` / ``values``: de-duplicated
        items (:meth:`gather_items`). Nothing is logged while Lightning runs its sanity check."""
        if self._trainer is None or self.trainer.sanity_checking:
            return
        ci = set(ci)
        unknown = ci - set(values)
        if unknown:
            raise ValueError(f"report_items: ci names {sorted(unknown)} are not among the values {sorted(values)}")
        metrics: dict[str, float] = {}
        for name, v in values.items():
            if v.dim() != 1:
                continue
            mean, half = mean_ci95(v)
            metrics[f"{stage}/{name}"] = mean
            if name in ci:
                metrics[f"{stage}/{name}_ci95"] = half
        metrics[f"{stage}/{count_name}"] = float(index.numel())
        # every rank holds the same gathered rows, so every rank logs the same numbers (ModelCheckpoint needs them)
        self.log_dict(metrics, prog_bar=prog_bar, sync_dist=True, batch_size=index.numel())

    def report_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor],
                     ci: Iterable[str] = (), count_name: str = "items", prog_bar: bool = False
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Gather per-item results from every rank, drop DDP padding duplicates, log mean +- 95% CI: :meth:`gather_items`
        then :meth:`log_items` (see them for the arguments).

        Returns:
            ``(index, values)`` on the CPU, one row per distinct item, sorted by index; identical on every rank.
        """
        index, rows = self.gather_items(index, values)
        self.log_items(stage, index, rows, ci=ci, count_name=count_name, prog_bar=prog_bar)
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
