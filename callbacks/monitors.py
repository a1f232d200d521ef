"""Device and throughput monitoring: episodes per second always; GPU memory and utilisation only on GPU."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch


class EpisodeThroughput(pl.Callback):
    """Logs ``perf/train_episodes_per_s`` (wall time per training step, data loading included) every
    ``log_every_n_steps``, ``perf/eval_episodes_per_s`` per evaluation, and on CUDA devices
    ``perf/gpu_mem_peak_gb`` (peak allocated by tensors), ``perf/gpu_mem_reserved_gb`` (peak held by the caching
    allocator: what other processes cannot use) and ``perf/gpu_util`` (utilisation needs ``pynvml``; skipped if
    absent). On CPU it logs throughput only and nothing device-specific. The CUDA path is unit-tested with a faked
    ``torch.cuda`` (tests/test_monitors.py) and has not yet run on a GPU.

    Args:
        window: number of recent training steps the rate is averaged over.
    """

    def __init__(self, window: int = 20):
        self.window = window
        self._train_times: list[float] = []
        self._last = None
        self._eval_start = None
        self._eval_count = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self._train_times = (self._train_times + [now - self._last])[-self.window:]
        self._last = now
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0 and self._train_times:
            rate = len(self._train_times) / sum(self._train_times)
            pl_module.log("perf/train_episodes_per_s", rate, on_step=True, on_epoch=False, batch_size=1)
            self._log_device(pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start, self._eval_count = time.perf_counter(), 0

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_count += 1

    on_test_batch_end = on_validation_batch_end

    def _eval_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._eval_count or self._eval_start is None:
            return
        rate = self._eval_count / max(time.perf_counter() - self._eval_start, 1e-9)
        pl_module.log("perf/eval_episodes_per_s", rate, sync_dist=True)
        self._last = time.perf_counter()  # evaluation time is not training time

    on_validation_epoch_end = _eval_end
    on_test_epoch_end = _eval_end

    @staticmethod
    def _log_device(pl_module: pl.LightningModule) -> None:
        device = pl_module.device
        if device.type != "cuda":
            return
        for key, peak in (("perf/gpu_mem_peak_gb", torch.cuda.max_memory_allocated),
                          ("perf/gpu_mem_reserved_gb", torch.cuda.max_memory_reserved)):
            pl_module.log(key, peak(device) / 2**30, on_step=True, on_epoch=False, batch_size=1)
        try:
            util = torch.cuda.utilization(device)
        except Exception:  # pynvml missing or unsupported driver: utilisation is optional
            return
        pl_module.log("perf/gpu_util", float(util), on_step=True, on_epoch=False, batch_size=1)
