"""MAML (Finn et al., ICML 2017) and ANIL (Raghu et al., ICLR 2020): a backbone and a linear head, adapted to each
episode's support set by a few gradient steps, then scored on its queries.

Built on ``zoo.training.inner_loop``: the inner loop is a pure function of a parameter dict, so a meta-batch of B episodes
(``episodes_per_batch`` in the DataModule) runs as one ``torch.func.vmap`` over tasks, and the meta-gradient of the
mean query loss is an ordinary ``backward()``. Which parameters the inner loop moves is the only difference
between MAML (``adapt: all``), ANIL (``adapt: head``, the "almost no inner loop" of Raghu et al.) and BOIL
(``adapt: backbone``, Oh et al. 2021).

BatchNorm [INTERP]: by default every BatchNorm layer uses the statistics of the batch it sees, in training and in
evaluation, and keeps no running statistics (``zoo.training.inner_loop.use_batch_statistics``). That is what the official
MAML code does (transductive: a task's support set, then its query set, each normalised by its own statistics).
Running statistics updated by every inner step of every task would be neither the meta-parameters nor the
adapted ones, and cannot be written from inside ``vmap``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.func import vmap

from datamodules.episodes import Episode
from zoo.nn.backbones import BackboneWithHead
from zoo.training.episodic import EpisodicModule
from zoo.training.inner_loop import adapt, functional_forward, select, use_batch_statistics

#: ``adapt`` switch -> the parameter-name prefix the inner loop moves (``None``: all of them).
ADAPTED = {"all": None, "head": "head.", "backbone": "backbone."}


class MAML(EpisodicModule):
    """Model-Agnostic Meta-Learning: ``theta' = theta - alpha grad L_support(theta)`` for ``inner_steps`` steps
    (eq. 1), then the meta-objective is the query loss at ``theta'`` averaged over the meta-batch (eq. 3-4).

    Args:
        backbone: feature extractor (``zoo.Conv4`` in the paper's settings).
        n_way: classes per episode; training and evaluation episodes must have the same way (the head is N-way).
        adapt: ``"all"`` (MAML), ``"head"`` (ANIL) or ``"backbone"`` (BOIL): the parameters the inner loop moves.
        inner_lr: alpha (0.4 for Omniglot, 0.01 for miniImageNet in the paper).
        inner_steps: inner steps during meta-training (1 for Omniglot, 5 for miniImageNet).
        eval_inner_steps: inner steps at validation and test (3 for Omniglot, 10 for miniImageNet).
        first_order: drop the second-order terms of the meta-gradient (FOMAML, section 5.2). Evaluation never
            needs them and always runs first order.
        learn_inner_lr: learn one step size per parameter element, initialised at ``inner_lr`` (Meta-SGD,
            Li et al. 2017); meta-trained with the rest.
        head_init: see :class:`BackboneWithHead`.
        batch_statistics: BatchNorm with batch statistics only (module docstring); off keeps the backbone's
            BatchNorm as it is (running statistics then update on every inner step and no meta-batch ``vmap``).
        optimizer, scheduler: as every system (Adam with lr 1e-3 is the paper's meta-optimiser).
    """

    def __init__(self, backbone: nn.Module, n_way: int = 5, adapt: str = "all", inner_lr: float = 0.4,
                 inner_steps: int = 1, eval_inner_steps: int = 3, first_order: bool = False,
                 learn_inner_lr: bool = False, head_init: str = "xavier", batch_statistics: bool = True,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        if adapt not in ADAPTED:
            raise ValueError(f"{type(self).__name__}: adapt must be one of {sorted(ADAPTED)}, got {adapt!r}")
        for name, value in (("inner_steps", inner_steps), ("eval_inner_steps", eval_inner_steps)):
            if int(value) < 0:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 0, got {value}")
        if not inner_lr > 0:
            raise ValueError(f"{type(self).__name__}: inner_lr must be > 0, got {inner_lr}")
        self.save_config()
        self.n_way, self.adapt = n_way, adapt
        self.inner_lr, self.inner_steps, self.eval_inner_steps = inner_lr, inner_steps, eval_inner_steps
        self.first_order, self.batch_statistics = first_order, batch_statistics
        self.learner = BackboneWithHead(backbone, n_way, head_init)
        if batch_statistics:
            use_batch_statistics(self.learner)
        self.adapted_names = select([n for n, _ in self.learner.named_parameters()], ADAPTED[adapt])
        # Meta-SGD step sizes, one tensor per adapted parameter, in the order of adapted_names.
        self.inner_lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, inner_lr)) for n, p in self.learner.named_parameters()
             if n in self.adapted_names]) if learn_inner_lr else None

    def step_sizes(self) -> float | dict[str, torch.Tensor]:
        if self.inner_lrs is None:
            return self.inner_lr
        return dict(zip(self.adapted_names, self.inner_lrs))

    def task_logits(self, params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                    query_x: torch.Tensor, steps: int, first_order: bool) -> torch.Tensor:
        """One task: adapt ``params`` on the support set, return the query logits at the adapted parameters."""
        lr = self.step_sizes()
        if self.adapt == "head":
            # ANIL: the backbone is not adapted, so its features are computed once (support and query separately,
            # as the generic path normalises them) and only the head runs inside the loop.
            backbone = {n[len("backbone."):]: t for n, t in params.items() if n.startswith("backbone.")}
            support = functional_forward(self.learner.backbone, backbone, support_x)
            query = functional_forward(self.learner.backbone, backbone, query_x)
            head = {n[len("head."):]: params[n] for n in self.adapted_names}
            lr = {n[len("head."):]: v for n, v in lr.items()} if isinstance(lr, dict) else lr
            fast = adapt(head, lambda p: F.cross_entropy(functional_forward(self.learner.head, p, support), support_y),
                         steps, lr, first_order)
            return functional_forward(self.learner.head, fast, query)
        fast = adapt(params, lambda p: F.cross_entropy(functional_forward(self.learner, p, support_x), support_y),
                     steps, lr, first_order, which=self.adapted_names)
        return functional_forward(self.learner, fast, query_x)

    def forward(self, episode: Episode) -> torch.Tensor:
        """Query logits ``[num_query, n_way]`` after adapting to the episode's support set: ``inner_steps``
        (``eval_inner_steps`` when evaluating) gradient steps ``theta' = theta - alpha grad L_support(theta)``
        (Finn et al. 2017, eq. 1; ANIL adapts only the head), then the query items through ``theta'``."""
        if torch.is_inference_mode_enabled():
            # Lightning evaluates under inference mode, where no gradient can be taken; the inner loop needs them.
            with torch.inference_mode(False):
                return self.forward(episode.clone())
        if episode.n_way != self.n_way:
            raise ValueError(f"{type(self).__name__} has a {self.n_way}-way head but the episode is "
                             f"{episode.n_way}-way; set train_n_way to n_way in the data config")
        steps = self.inner_steps if self.training else self.eval_inner_steps
        first_order = self.first_order or not self.training
        params = dict(self.learner.named_parameters())

        def task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            return self.task_logits(params, sx, sy, qx, steps, first_order)

        if not episode.batched:
            return task(episode.support_x, episode.support_y, episode.query_x)
        if not self.batch_statistics:  # running statistics cannot be updated under vmap: one task at a time
            return torch.stack([task(e.support_x, e.support_y, e.query_x) for e in episode.unbatch()])
        return vmap(task)(episode.support_x, episode.support_y, episode.query_x)


class ANIL(MAML):
    """ANIL (Raghu et al., ICLR 2020): MAML whose inner loop adapts only the linear head; the backbone is learnt
    by the outer loop alone. Same arguments as :class:`MAML`, with ``adapt`` defaulting to ``"head"``."""

    def __init__(self, backbone: nn.Module, n_way: int = 5, adapt: str = "head", inner_lr: float = 0.4,
                 inner_steps: int = 1, eval_inner_steps: int = 3, first_order: bool = False,
                 learn_inner_lr: bool = False, head_init: str = "xavier", batch_statistics: bool = True,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(backbone, n_way, adapt, inner_lr, inner_steps, eval_inner_steps, first_order,
                         learn_inner_lr, head_init, batch_statistics, optimizer, scheduler)
