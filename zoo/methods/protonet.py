"""Prototypical Networks (Snell et al., NeurIPS 2017), the baseline every metric-based method here is measured by.

The class also carries the loss terms of SuSana Distancia (Proto-Triplet and ICNN, see ``zoo.methods.losses``): they
change only how an episode's embeddings become a loss, so they are a config choice of ProtoNet, not a new model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from datamodules.episodes import Episode
from zoo.training.episodic import EpisodicModule
from zoo.methods.losses import (combine_loss_terms, episode_loss_terms, prototypes, prototypical_logits,
                        validate_loss_terms)


def concat_inputs(support: Any, query: Any) -> Any:
    """Support and query inputs as one batch: one backbone pass, and BatchNorm sees the whole episode."""
    if isinstance(support, torch.Tensor):
        return torch.cat([support, query])
    return list(support) + list(query)


class ProtoNet(EpisodicModule):
    """Class prototypes are the mean support embeddings; queries are scored by distance to them (eq. 1-2).

    The training loss is the equal-weight average of the selected ``loss_terms`` (official ``get_icnn_loss``):
    ``["cross"]`` is plain ProtoNet; the SuSana Distancia paper's settings are ``["cross", "prototriplet"]``,
    ``["cross", "fullicnn"]`` and ``["cross", "prototriplet", "fullicnn"]`` (our reading of which of the official
    code's 12 configurations the paper reports; all 12 are ``zoo.methods.losses.OFFICIAL_PRESETS``). Evaluation scores
    every method by the same prototype classifier and reports the same selected-term loss.

    Args:
        backbone: any module mapping a batch of inputs to ``[B, d]`` (``zoo.nn.backbones``, ``zoo.nn.text_encoder``).
        distance: ``"euclidean"`` (squared, as Snell et al.) or ``"cosine"``.
        temperature: logits are divided by it (1 in the paper and the official SuSana Distancia code); with
            ``learn_temperature`` its initial value.
        loss_terms: names from ``zoo.methods.losses.LOSS_TERMS`` (``cross``, ``prototriplet``, ``fullicnn``, ``suppicnn``,
            ``queryicnn``); a misspelt name is an error, not a silently dropped term.
        margin: Proto-Triplet hinge margin (0.5 in the official code).
        icnn_k: neighbours of the ICNN score (4 in the official code).
        query_protos: ``queryicnn`` scores queries against the prototypes instead of the support (tags 5 and 6).
        official_drop_first: reproduce the official code's quirk of dropping the first neighbour even when the
            targets are not the scored points (off: only a point's own self-match is dropped).
        learn_temperature: learn the logit scale ``1 / T`` as ``exp(log_scale)`` (the learned metric scaling of
            Oreshkin et al., TADAM, NeurIPS 2018, sec. 2.1). Cosine logits lie in [-1, 1], so a fixed T = 1 gives a
            nearly flat softmax and a T picked by hand is one more hyper-parameter; a log-parameter keeps the scale
            positive. Off by default (no extra parameter: the image checkpoints are unchanged); the text configs
            turn it on with T = 0.1 (scale 10) and cosine distance.
    """

    def __init__(self, backbone: nn.Module, distance: str = "euclidean", temperature: float = 1.0,
                 loss_terms: list[str] | None = None, margin: float = 0.5, icnn_k: int = 4,
                 query_protos: bool = False, official_drop_first: bool = False, learn_temperature: bool = False,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"ProtoNet distance must be 'euclidean' or 'cosine', got {distance!r}")
        self.loss_terms = validate_loss_terms(loss_terms or ["cross"])
        self.save_config()
        self.backbone = backbone
        if not temperature > 0:
            raise ValueError(f"ProtoNet temperature must be > 0, got {temperature!r}")
        self.distance, self.temperature = distance, temperature
        # the parameter exists only when learned, so checkpoints of fixed-temperature models keep their keys
        self.log_scale = nn.Parameter(torch.tensor(-math.log(temperature))) if learn_temperature else None
        self.margin, self.icnn_k = margin, icnn_k
        self.query_protos, self.official_drop_first = query_protos, official_drop_first

    def logit_temperature(self) -> float | torch.Tensor:
        """The temperature the logits are divided by: fixed, or ``exp(-log_scale)`` when learned."""
        return self.temperature if self.log_scale is None else torch.exp(-self.log_scale)

    def embed_episode(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Support and query embeddings from one backbone pass."""
        n_support = len(episode.support_y)
        features = self.backbone(concat_inputs(episode.support_x, episode.query_x))
        return features[:n_support], features[n_support:]

    def embed_and_score(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Support embeddings, query embeddings and the query logits against the class prototypes."""
        support, query = self.embed_episode(episode)
        protos = prototypes(support, episode.support_y, episode.n_way)
        return support, query, prototypical_logits(query, protos, self.distance, self.logit_temperature())

    def forward(self, episode: Episode) -> torch.Tensor:
        """Query logits ``[num_query, n_way]`` of one episode: each query's negative distance to the class
        prototypes, the mean embeddings of each class's support items (Snell et al. 2017, eq. 1), divided by the
        temperature; their softmax is eq. 2, ``p(y = k | x) ∝ exp(-d(f(x), c_k))``."""
        return self.embed_and_score(episode)[2]

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        if episode.batched:
            return self.batched_episode_loss(episode)
        support, query = self.embed_episode(episode)
        return self.loss_from_embeddings(support, query, episode)

    def batched_episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """A meta-batch of B episodes: one backbone pass over all their images, then each episode's prototypes
        and loss terms; the loss is their mean and the logits are ``[B, num_query, n_way]``.

        In training mode BatchNorm normalises over the whole meta-batch (a larger batch), so the losses equal B
        separate steps exactly only in evaluation mode or without BatchNorm; the head is per episode and costs
        little next to the backbone.
        """
        b, n_support = episode.support_x.shape[:2]
        features = self.backbone(torch.cat([episode.support_x.flatten(0, 1), episode.query_x.flatten(0, 1)]))
        support = features[: b * n_support].unflatten(0, (b, n_support))
        query = features[b * n_support:].unflatten(0, (b, -1))
        results = [self.loss_from_embeddings(s, q, e) for s, q, e in zip(support, query, episode.unbatch())]
        terms = {k: torch.stack([r[2][k] for r in results]).mean() for k in results[0][2]}
        return torch.stack([r[0] for r in results]).mean(), torch.stack([r[1] for r in results]), terms

    def loss_from_embeddings(self, support: torch.Tensor, query: torch.Tensor,
                             episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Loss, logits and terms of one episode from its support and query embeddings."""
        protos = prototypes(support, episode.support_y, episode.n_way)
        logits = prototypical_logits(query, protos, self.distance, self.logit_temperature())
        if self.loss_terms == ["cross"]:
            return torch.nn.functional.cross_entropy(logits, episode.query_y), logits, {}
        terms = episode_loss_terms(support, episode.support_y, query, episode.query_y, episode.n_way,
                                   self.loss_terms, self.margin, self.icnn_k, query_protos=self.query_protos,
                                   official_drop_first=self.official_drop_first, logits=logits,
                                   distance=self.distance, temperature=self.logit_temperature())
        return combine_loss_terms(terms, self.loss_terms), logits, terms
