"""Writes ``zoo predict`` results: one row per query image with its predicted class and probability."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from callbacks.run_dir import run_dir


class PredictionWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` (``file,prediction,probability``) and prints each line.

    Expects episodes whose ``extras`` carry ``class_names`` and ``query_files`` (as the image DataModules'
    ``predict_dataloader`` makes them).

    Args:
        output: the CSV path; default ``<run dir>/predictions.csv``.
    """

    def __init__(self, output: str | None = None):
        super().__init__(write_interval="batch")
        self.output = output

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        extras = prediction["extras"]
        names, files = extras["class_names"], extras["query_files"]
        rows = [(f, names[int(p)], float(prediction["probs"][i, int(p)]))
                for i, (f, p) in enumerate(zip(files, prediction["pred"]))]
        target = Path(self.output or run_dir(trainer) / "predictions.csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "prediction", "probability"])
            writer.writerows(rows)
        os.replace(tmp, target)
        for f, name, p in rows:
            rank_zero_info(f"{f} -> {name} ({p:.3f})")
        rank_zero_info(f"predictions written to {target}")
