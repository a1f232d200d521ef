"""Writes ``zoo predict`` results: one row per query image with its predicted class and probability."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from callbacks.run_dir import run_dir
from safefiles import atomic_path


class PredictionWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` (``file,prediction,probability``) and prints each line.

    ``zoo predict`` adds this writer when the config has none. Rows are appended batch by batch (with
    ``predict_query_chunk`` every chunk is one batch) to a temporary file beside the target, under one header; the
    file is renamed onto the target (mode 0644) only when prediction ends, so an interrupted run never leaves a
    partial ``predictions.csv`` that looks complete. Under DDP each rank writes ``predictions-rank<r>.csv``.

    Expects episodes whose ``extras`` carry ``class_names`` and ``query_files`` (as the image DataModules'
    ``predict_dataloader`` makes them).

    Args:
        output: the CSV path; default ``<run dir>/predictions.csv``.
    """

    def __init__(self, output: str | None = None):
        super().__init__(write_interval="batch")
        self.output = output
        self._open: contextlib.ExitStack | None = None
        self._writer: Any = None
        self._file: Any = None
        self._target: Path | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        target = Path(self.output or run_dir(trainer) / "predictions.csv")
        if trainer.world_size > 1:
            target = target.with_name(f"{target.stem}-rank{trainer.global_rank}{target.suffix}")
        self._target = target
        self._open = contextlib.ExitStack()
        tmp = self._open.enter_context(atomic_path(target))
        f = self._open.enter_context(open(tmp, "w", newline=""))
        self._writer = csv.writer(f)
        self._writer.writerow(["file", "prediction", "probability"])
        self._file = f

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        extras = prediction["extras"]
        names, files = extras["class_names"], extras["query_files"]
        rows = [(f, names[int(p)], float(prediction["probs"][i, int(p)]))
                for i, (f, p) in enumerate(zip(files, prediction["pred"]))]
        self._writer.writerows(rows)
        self._file.flush()
        for f, name, p in rows:
            rank_zero_info(f"{f} -> {name} ({p:.3f})")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._open is not None:
            self._open.close()  # closes the file, then renames it onto the target
            self._open = None
            rank_zero_info(f"predictions written to {self._target}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._open is not None:  # drop the partial file; the previous predictions.csv (if any) stays
            self._open.__exit__(type(exception), exception, exception.__traceback__)
            self._open = None
