"""Where a run writes its files."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's own directory: the parent of its ``checkpoints/`` folder when it has a checkpoint callback
    (``runs/<project>/<run id>`` with W&B, ``runs/<name>/version_N`` with CSV), else the logger's ``log_dir``.

    Lightning's ``trainer.log_dir`` is not it with W&B (there it is the shared ``save_dir``), which is why
    configs, tables and predictions are placed with this function instead.
    """
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "dirpath", None):
        return Path(ckpt.dirpath).parent
    return Path(trainer.log_dir or trainer.default_root_dir)
