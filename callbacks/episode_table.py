"""Per-episode results: a CSV beside the run, a W&B table, and the headline ``mean +- 95% CI`` line."""

from __future__ import annotations

import csv
import io

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from callbacks.run_dir import run_dir
from safefiles import atomic_write_text
from datamodules.episode_set import write_episode_set
from callbacks.progress import format_result


class EpisodeTable(pl.Callback):
    """After each test (and optionally validation), write one row per episode and report mean +- 95% CI.

    Reads ``pl_module.records[stage]`` (the rows of :class:`zoo.training.base.ZooModule`'s evaluation template; a system
    whose items are not episodes - no ``episode`` key - gets no table), writes
    ``<run dir>/<stage>_episodes.csv`` (atomically, mode 0644) and, with a W&B logger, a ``<stage>/episode_table``
    table plus the mean and CI in the run summary (``<stage>/episodes`` is the episode count the module logs).
    Beside the CSV, ``<stage>_episodes.json`` records which episodes these were
    (:func:`datamodules.episode_set.episode_set_record`; its hash also goes to the W&B summary as
    ``<stage>/episode_set``), which is what ``zoo compare`` checks before pairing two runs.

    Args:
        stages: which evaluations to record (``test`` by default; ``val`` writes a file per validation).
    """

    def __init__(self, stages: list[str] | None = None):
        self.stages = stages or ["test"]

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in self.stages or trainer.sanity_checking or not trainer.is_global_zero or trainer.fast_dev_run:
            return  # fast_dev_run writes nothing, as Lightning's own checkpointing and logging
        rows = getattr(pl_module, "records", {}).get(stage)
        if not rows or "episode" not in rows[0]:
            return
        out = run_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{stage}_episodes.csv"
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(target, text.getvalue())
        episode_set = write_episode_set(trainer.datamodule, stage, [r["episode"] for r in rows],
                                        out / f"{stage}_episodes.json")
        metrics = trainer.callback_metrics
        acc, ci = metrics.get(f"{stage}/acc"), metrics.get(f"{stage}/acc_ci95")
        if acc is not None and ci is not None:
            rank_zero_info(f"{format_result(stage, 'acc', float(acc), float(ci))} (95% CI over {len(rows)} "
                           f"episodes); per-episode results in {target}")
        summary = getattr(trainer.datamodule, f"{stage}_summary", None)  # a benchmark's own score (OmniglotSmall)
        if summary is not None:
            rank_zero_info(summary([r["acc"] for r in rows]))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                table = wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])
                logger.experiment.log({f"{stage}/episode_table": table})
                if acc is not None:
                    logger.experiment.summary[f"{stage}/acc"] = float(acc)
                    logger.experiment.summary[f"{stage}/acc_ci95"] = float(ci)
                if episode_set is not None:
                    logger.experiment.summary[f"{stage}/episode_set"] = episode_set["hash"]

    # *_end, not *_epoch_end: callbacks' epoch-end hooks run before the module's, which computes the records.
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, "test")
