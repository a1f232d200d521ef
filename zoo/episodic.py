"""The base LightningModule of every episodic classifier: steps, metrics, the evaluation protocol.

A method only says how an episode becomes query logits (``forward``) and, if it adds terms, how it becomes a
loss (``episode_loss``). Everything that must be identical across methods for a comparison to be fair lives here:
accuracy per episode and the fixed evaluation episodes (from the DataModule); the gathering, de-duplication of DDP
padding, mean +- 95% confidence interval, config saving and optimisers come from :class:`zoo.base.ZooModule`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from datamodules.episodes import Episode
from zoo.base import ZooModule
from zoo.metrics import majority_class_share


class EpisodicModule(ZooModule):
    """Base class: subclasses implement ``forward(episode) -> logits [num_query, n_way]``.

    Logged keys: ``train/loss``, ``train/acc`` per step; ``val/acc``, ``val/acc_ci95``, ``val/loss``,
    ``val/majority_share`` (``zoo.metrics.majority_class_share``, the collapse diagnostic) and the same for
    ``test/`` once per evaluation, over the whole fixed episode set (gathered across ranks).
    After an evaluation, ``episode_records[stage]`` holds one row per episode (index, accuracy, loss, majority
    share) for the per-episode table written by ``callbacks.EpisodeTable``.

    Args:
        optimizer: a callable building the optimiser from the parameters (LightningCLI ``OptimizerCallable``).
        scheduler: optional learning-rate scheduler callable; stepped once per epoch.
    """

    plateau_monitor = "val/acc"

    def __init__(self, optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        self.episode_records: dict[str, list[dict[str, float]]] = {}
        self._eval_outputs: list[torch.Tensor] = []

    # -- what a method provides ----------------------------------------------------------------------------------
    def forward(self, episode: Episode) -> torch.Tensor:  # pragma: no cover - interface
        """Query logits ``[num_query, n_way]`` of one episode (``[B, num_query, n_way]`` for a batched one), from
        its labelled support items; each system defines how."""
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
        pred = logits.argmax(-1)
        acc = (pred == episode.query_y).float().mean()
        share = majority_class_share(pred, logits.shape[-1]).float().mean().to(acc.device)  # collapse diagnostic
        self._eval_outputs.append(torch.stack([torch.tensor(float(episode.index), device=acc.device),
                                               acc.detach(), loss.detach().float(), share]))

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        self._eval_step(episode)

    def test_step(self, episode: Episode, batch_idx: int) -> None:
        self._eval_step(episode)

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._eval_outputs:
            return
        rows = torch.stack(self._eval_outputs)
        self._eval_outputs = []
        values = {"acc": rows[:, 1], "loss": rows[:, 2], "majority_share": rows[:, 3]}
        index, rows = self.report_items(stage, rows[:, 0].long(), values, ci=("acc",), count_name="episodes",
                                        prog_bar=stage == "val")
        self.episode_records[stage] = [
            {"episode": int(i), "acc": float(a), "loss": float(l), "majority_share": float(m)}
            for i, a, l, m in zip(index, rows["acc"], rows["loss"], rows["majority_share"])]

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # -- prediction ----------------------------------------------------------------------------------------------
    def predict_step(self, episode: Episode, batch_idx: int) -> dict[str, Any]:
        """Classify an episode's queries; returns predicted local labels and their softmax probabilities."""
        probs = self(episode).softmax(-1)
        return {"pred": probs.argmax(-1).cpu(), "probs": probs.cpu(), "extras": episode.extras}
