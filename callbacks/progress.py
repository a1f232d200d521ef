"""Progress a person can follow in a log file: one line per epoch and one at the end of a test.

Lightning's progress bar redraws one terminal line; written to a file (CI logs, ``nohup``) it is either absent or
thousands of carriage returns, so a long ``zoo fit`` showed nothing between the model summary and the final result.
The ``zoo`` command adds :class:`EpochProgress` (and turns the bar off) when standard output is not a terminal.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Timer

from datamodules.progress import format_clock as _clock  # one time format for every progress line



def format_value(name: str, value: float, ci: float | None = None) -> str:
    """The one console format of an evaluation number: an accuracy (``acc``, ``*_acc``, ``.../acc``: a fraction)
    in percent with 2 decimals, ``96.60 +- 0.30 %``, as the README and registry tables; any other metric with 4
    decimals as logged, ``0.0100 +- 0.0020``."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "acc" or leaf.endswith("_acc"):
        return f"{100 * float(value):.2f}" + (f" +- {100 * float(ci):.2f} %" if ci is not None else " %")
    if leaf == "episodes" and ci is None:  # a count
        return str(round(float(value)))
    return f"{float(value):.4f}" + (f" +- {float(ci):.4f}" if ci is not None else "")


def format_result(stage: str, name: str, value: float, ci: float | None = None) -> str:
    """``test acc 96.60 +- 0.30 %`` (:func:`format_value`): the line ``callbacks.EpochProgress`` and
    ``callbacks.EpisodeTable`` print, so a test shows its accuracy one way."""
    return f"{stage} {name} {format_value(name, value, ci)}"


def results_table(metrics: dict[str, float], stage: str) -> str:
    """What ``zoo test`` / ``validate`` print at the end instead of Lightning's results table: every
    ``<stage>/...`` and ``perf/...`` metric with its full name (Lightning's table cut long names such as GPAM's
    ``test/nota0.15/nota_f1`` to the terminal's width) and its value in :func:`format_value`'s format, a metric's
    ``_ci95`` shown beside it rather than on a row of its own."""
    keys = sorted(k for k in metrics if k.startswith((f"{stage}/", "perf/")))
    keys = [k for k in keys if not (k.endswith("_ci95") and k[: -len("_ci95")] in metrics)]
    if not keys:
        return ""
    width = max(map(len, keys))
    rows = [f"  {k:<{width}}  {format_value(k, metrics[k], metrics.get(k + '_ci95'))}" for k in keys]
    return "\n".join([f"{stage} results (95% CI over episodes):", *rows])


def _batch_items(batch: Any) -> int:
    """Episodes (or tasks) in one training batch: the leading size of a dict of tensors (NAP's task batches),
    else 1 (an :class:`~datamodules.episodes.Episode` is one episode)."""
    if isinstance(batch, dict):
        first = next((v for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim > 0), None)
        if first is not None:
            return int(first.shape[0])
    return 1


class EpochProgress(pl.Callback):
    """Prints, on rank 0, one line per training epoch and one when a test ends, for logs that are not a terminal.

    Epoch line: epoch / max epochs, mean training loss of the epoch (the steps' returned losses; ``nan``, with the
    count of such steps, when any was not finite), the validation metric +- its 95% CI when validation ran that
    epoch, training episodes per second (training steps only, validation excluded), time elapsed since the fit
    started and the estimated time remaining (mean epoch time, validation included, x epochs left; or the time
    ``max_time`` leaves, if sooner). Test line: the test metric +- CI over how many episodes, and the time.

    Args:
        metric: the evaluation metric, logged by the module as ``val/<metric>`` and ``test/<metric>`` with its CI
            as ``<stage>/<metric>_ci95``; default: the first (alphabetically) logged metric that has a CI, which is
            ``acc`` for the episodic classifiers and ``regret`` for NAP.
        stream: where lines go (default standard output, looked up when printing so capture works).
    """

    def __init__(self, metric: str | None = None, stream: TextIO | None = None):
        self.metric, self.stream = metric, stream
        self._fit_start = self._epoch_start = self._test_start = 0.0
        self._train_seconds, self._items, self._loss_sum, self._loss_n = 0.0, 0, 0.0, 0
        self._nonfinite = 0
        self._step_start: float | None = None
        self._validated = False

    def _print(self, trainer: pl.Trainer, line: str) -> None:
        if trainer.is_global_zero:
            print(line, file=self.stream or sys.stdout, flush=True)

    def _metric(self, trainer: pl.Trainer, stage: str) -> str | None:
        metrics = trainer.callback_metrics
        name = self.metric or next((k[len(stage) + 1: -len("_ci95")] for k in sorted(metrics)
                                    if k.startswith(f"{stage}/") and k.endswith("_ci95")), None)
        value = metrics.get(f"{stage}/{name}")
        if value is None:
            return None
        ci = metrics.get(f"{stage}/{name}_ci95")
        return format_result(stage, name, float(value), None if ci is None else float(ci))

    # -- fit ---------------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_seconds, self._items, self._loss_sum, self._loss_n = 0.0, 0, 0.0, 0
        self._nonfinite = 0
        self._validated = False  # the logged val metric may be an earlier epoch's (check_val_every_n_epoch > 1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._step_start is not None:
            self._train_seconds += time.perf_counter() - self._step_start
        self._items += _batch_items(batch)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            value = float(loss.detach())
            # A non-finite loss is counted, not dropped: the epoch's mean then reads nan instead of hiding it
            # behind the mean of the other steps (callbacks.NonFiniteLoss stops or skips such steps).
            self._loss_sum += value
            self._loss_n += 1
            self._nonfinite += not math.isfinite(value)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the end-of-epoch validation before this hook, so its metric is already logged.
        now = time.perf_counter()
        done = trainer.current_epoch + 1
        parts = [f"epoch {done}/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0
                 else f"epoch {done}"]
        loss = f"train loss {self._loss_sum / self._loss_n:.4f}" if self._loss_n else "train loss -"
        if self._nonfinite:
            loss += f" ({self._nonfinite} of {self._loss_n} steps non-finite)"
        parts.append(loss)
        parts.append((self._validated and self._metric(trainer, "val")) or "val -")
        rate = self._items / self._train_seconds if self._train_seconds > 0 else None
        parts.append(f"{rate:.1f} episodes/s" if rate is not None else "- episodes/s")
        elapsed = now - self._fit_start
        parts.append(f"elapsed {_clock(elapsed)}")
        remaining = None
        if trainer.max_epochs and trainer.max_epochs > 0:
            remaining = elapsed / done * max(0, trainer.max_epochs - done)
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        left = timer.time_remaining("train") if timer is not None else None
        if left is not None:  # --trainer.max_time stops the fit first when it is the tighter bound
            remaining = left if remaining is None else min(remaining, left)
        if remaining is not None:
            parts.append(f"remaining ~{_clock(remaining)}")
        self._print(trainer, " | ".join(parts))

    # -- test --------------------------------------------------------------------------------------------------
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_start = time.perf_counter()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_test_end, not on_test_epoch_end: callbacks' epoch-end hooks run before the module logs test/<metric>.
        episodes = trainer.callback_metrics.get("test/episodes")
        parts = [self._metric(trainer, "test") or "test -"]
        if episodes is not None:
            parts.append(f"{int(episodes)} episodes")
        parts.append(f"{_clock(time.perf_counter() - self._test_start)}")
        self._print(trainer, "test done | " + " | ".join(parts))
