"""The base LightningModule of every episodic classifier: steps, metrics, the evaluation protocol, optimisers.

A method only says how an episode becomes query logits (``forward``) and, if it adds terms, how it becomes a
loss (``episode_loss``). Everything that must be identical across methods for a comparison to be fair lives here:
accuracy per episode, the fixed evaluation episodes (from the DataModule), de-duplication of DDP padding, and the
mean +- 95% confidence interval.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

from datamodules.episodes import Episode
from zoo.metrics import mean_ci95


class EpisodicModule(pl.LightningModule):
    """Base class: subclasses implement ``forward(episode) -> logits [num_query, n_way]``.

    Logged keys: ``train/loss``, ``train/acc`` per step; ``val/acc``, ``val/acc_ci95``, ``val/loss`` and the same
    for ``test/`` once per evaluation, over the whole fixed episode set (gathered across ranks).
    After an evaluation, ``episode_records[stage]`` holds one row per episode (index, accuracy, loss) for the
    per-episode table written by ``callbacks.EpisodeTable``.

    Args:
        optimizer: a callable building the optimiser from the parameters (LightningCLI ``OptimizerCallable``).
        scheduler: optional learning-rate scheduler callable; stepped once per epoch.
    """

    def __init__(self, optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.episode_records: dict[str, list[dict[str, float]]] = {}
        self._eval_outputs: list[torch.Tensor] = []

    def save_config(self) -> None:
        """Save the constructor arguments as hyper-parameters that load with ``torch.load(weights_only=True)``.

        Built by LightningCLI, the arguments arrive as the parsed config (injected modules as class_path dicts),
        which is what ``load_from_checkpoint`` needs to rebuild them. Built in Python, injected modules and
        callables are objects that cannot be stored safely, so they are left out (pass them again when loading).
        """
        if _given_hyperparameters.get() is not None:
            self.save_hyperparameters()
            return
        frame = inspect.currentframe().f_back
        args = inspect.getargvalues(frame).locals
        primitive = (bool, int, float, str, type(None), list, tuple, dict)
        ignore = [k for k, v in args.items() if k not in ("self", "__class__") and not isinstance(v, primitive)]
        self.save_hyperparameters(ignore=ignore, frame=frame)

    # -- what a method provides ----------------------------------------------------------------------------------
    def forward(self, episode: Episode) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Loss, query logits and named loss terms (logged as ``train/<name>``); default: cross-entropy.

        A batched episode (``episodes_per_batch`` > 1) gives logits ``[B, num_query, n_way]`` and the loss is the
        mean over its B episodes (equal query counts, so the mean over all queries is the same number).
        """
        logits = self(episode)
        loss = F.cross_entropy(logits.flatten(0, -2), episode.query_y.flatten())
        return loss, logits, {}

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, episode: Episode, batch_idx: int) -> torch.Tensor:
        loss, logits, terms = self.episode_loss(episode)
        acc = (logits.argmax(-1) == episode.query_y).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc, **{f"train/{k}": v for k, v in terms.items()}},
                      prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=len(episode.support_y) if episode.batched else 1)
        return loss

    # -- evaluation ----------------------------------------------------------------------------------------------
    def _eval_step(self, episode: Episode) -> None:
        loss, logits, _ = self.episode_loss(episode)
        acc = (logits.argmax(-1) == episode.query_y).float().mean()
        self._eval_outputs.append(torch.stack([torch.tensor(float(episode.index), device=acc.device),
                                               acc.detach(), loss.detach().float()]))

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        self._eval_step(episode)

    def test_step(self, episode: Episode, batch_idx: int) -> None:
        self._eval_step(episode)

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._eval_outputs:
            return
        rows = torch.stack(self._eval_outputs)
        self._eval_outputs = []
        rows = self.all_gather(rows).reshape(-1, 3)  # [world * n, 3]; a no-op on one process
        # DDP pads every rank to the same count by repeating a few episodes: keep each index once.
        order = torch.argsort(rows[:, 0], stable=True)
        rows = rows[order]
        keep = torch.ones(len(rows), dtype=torch.bool, device=rows.device)
        keep[1:] = rows[1:, 0] != rows[:-1, 0]
        rows = rows[keep].cpu()
        mean, ci = mean_ci95(rows[:, 1])
        self.episode_records[stage] = [{"episode": int(i), "acc": float(a), "loss": float(l)} for i, a, l in rows]
        if self.trainer.sanity_checking:
            return
        self.log_dict({f"{stage}/acc": mean, f"{stage}/acc_ci95": ci, f"{stage}/loss": float(rows[:, 2].mean()),
                       f"{stage}/episodes": float(len(rows))}, prog_bar=stage == "val", sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # -- prediction ----------------------------------------------------------------------------------------------
    def predict_step(self, episode: Episode, batch_idx: int) -> dict[str, Any]:
        """Classify an episode's queries; returns predicted local labels and their softmax probabilities."""
        probs = self(episode).softmax(-1)
        return {"pred": probs.argmax(-1).cpu(), "probs": probs.cpu(), "extras": episode.extras}

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
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/acc"
        return {"optimizer": optimizer, "lr_scheduler": config}
