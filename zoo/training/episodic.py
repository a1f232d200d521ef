"""The base LightningModule of every episodic classifier: steps, metrics, the evaluation protocol.

A method only says how an episode becomes query logits (``forward``) and, if it adds terms, how it becomes a
loss (``episode_loss``). Everything that must be identical across methods for a comparison to be fair lives here:
accuracy per episode and the fixed evaluation episodes (from the DataModule); the gathering, de-duplication of DDP
padding, mean +- 95% confidence interval, config saving and optimisers come from :class:`zoo.training.base.ZooModule`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F

from datamodules.episodes import Episode
from zoo.training.base import ZooModule
from zoo.training.metrics import majority_class_share


class EpisodicModule(ZooModule):
    """Base class: subclasses implement ``forward(episode) -> logits [num_query, n_way]``.

    Logged keys: ``train/loss``, ``train/acc`` per step; ``val/acc``, ``val/acc_ci95``, ``val/loss``,
    ``val/majority_share`` (``zoo.training.metrics.majority_class_share``, the collapse diagnostic) and the same for
    ``test/`` once per evaluation, over the whole fixed episode set (gathered across ranks; the evaluation template
    of :class:`zoo.training.base.ZooModule`). After an evaluation, ``records[stage]`` holds one row per episode (``episode``,
    ``acc``, ``loss``, ``majority_share``) for the per-episode table written by ``callbacks.EpisodeTable``.

    Args:
        optimizer: a callable building the optimiser from the parameters (LightningCLI ``OptimizerCallable``).
        scheduler: optional learning-rate scheduler callable; stepped once per epoch.
    """

    plateau_monitor = "val/acc"
    item_key, count_name, ci_names = "episode", "episodes", ("acc",)

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

    def scored_episode(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Loss, predicted query labels and named loss terms of an episode (what a training step logs); default:
        :meth:`episode_loss` and the argmax of its logits. A system whose predictions are not an argmax over
        ``n_way`` logits (a NOTA decision, :class:`zoo.methods.gpam.NotaRelationModule`) overrides this."""
        loss, logits, terms = self.episode_loss(episode)
        return loss, logits.argmax(-1), terms

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, episode: Episode, batch_idx: int) -> torch.Tensor:
        loss, pred, terms = self.scored_episode(episode)
        acc = (pred == episode.query_y).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc, **{f"train/{k}": v for k, v in terms.items()}},
                      prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=len(episode.support_y) if episode.batched else 1)
        return loss

    # -- evaluation (dispatch, gathering and summary: zoo.training.base.ZooModule) ----------------------------------------
    def evaluate_batch(self, episode: Episode, batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """One evaluation episode: its accuracy, loss and the share of its queries given the most predicted class
        (``zoo.training.metrics.majority_class_share``, the collapse diagnostic)."""
        loss, logits, _ = self.episode_loss(episode)
        pred = logits.argmax(-1)
        acc = (pred == episode.query_y).float().mean()
        share = majority_class_share(pred, logits.shape[-1]).float().mean().to(acc.device)
        return {"index": torch.tensor([int(episode.index)], device=acc.device), "acc": acc.detach().reshape(1),
                "loss": loss.detach().float().reshape(1), "majority_share": share.reshape(1)}

    @property
    def episode_records(self) -> dict[str, list[dict[str, Any]]]:
        """Deprecated name of :attr:`records` (the same rows), kept for code written before the evaluation template."""
        warnings.warn("episode_records is deprecated; read records[stage]", DeprecationWarning, stacklevel=2)
        return self.records

    # -- prediction ----------------------------------------------------------------------------------------------
    def predict_step(self, episode: Episode, batch_idx: int) -> dict[str, Any]:
        """Classify an episode's queries; returns predicted local labels and their softmax probabilities."""
        probs = self(episode).softmax(-1)
        return {"pred": probs.argmax(-1).cpu(), "probs": probs.cpu(), "extras": episode.extras}
