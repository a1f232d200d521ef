"""Callbacks for tests that run `zoo` in a subprocess (importable there through support.zoo_env): the DDP test's
episode probe, and a heartbeat that tells a signal test when batches are running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl


class EpisodeProbe(pl.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.seen: dict[str, list] = {"train": [], "val": [], "test": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen["train"].append([trainer.current_epoch, batch.index, batch.classes.tolist()])

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.seen["val"].append(batch.index)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen["test"].append(batch.index)

    def on_test_end(self, trainer, pl_module):
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"rank": trainer.global_rank, "world": trainer.world_size, "seen": self.seen, "metrics": metrics}))


class Heartbeat(pl.Callback):
    """After every training or predict batch: append a line to ``path`` and sleep ``delay`` seconds, so a test can
    wait until batches run and then signal the process while it is inside the loop."""

    def __init__(self, path: str, delay: float = 0.2):
        self.path, self.delay = path, delay

    def _beat(self, trainer, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{what} {trainer.global_step}\n")
        time.sleep(self.delay)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._beat(trainer, "train")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._beat(trainer, "predict")
