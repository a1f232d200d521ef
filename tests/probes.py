"""A callback for the DDP test: each rank writes the episode keys it saw (importable by `zoo` subprocesses)."""

from __future__ import annotations

import json
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
