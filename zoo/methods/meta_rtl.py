"""Meta-RTL (Fu et al., arXiv 2409.19075): RL-weighted multi-source meta-transfer to a low-resource target task.

No official code exists and the paper body was not available; this follows the proposed formalisation of
``methods/meta-dmoe_meta-rtl_nap.md`` section 2.4, every choice a switch. One meta-iteration ``m``:

1. the policy (an LSTM over the previous weights and rewards, :class:`SourcePolicy`) gives source weights
   ``p^m = softmax(W h_m)`` and ``n`` sources are drawn from ``(1 - eps) p^m + eps / K`` (epsilon-greedy);
2. each drawn source ``i`` gets a *temporal meta-model* ``theta_i``: ``inner_steps`` SGD steps from ``theta``
   on one batch of that source (``zoo.training.inner_loop.adapt``, first order);
3. on one batch of target training data, the rewards ``r_i = L(theta; B_T) - L(theta_i; B_T)``
   (:func:`source_rewards`: positive when source ``i`` moved the model towards the target);
4. the weighted Reptile update ``theta <- theta + eps_meta sum_i p_i (theta_i - theta) / sum_i p_i``
   (:func:`weighted_reptile_update`, on ``zoo.training.inner_loop.reptile_interpolate``);
5. REINFORCE on the policy with a moving-average baseline and an entropy bonus (:func:`policy_gradient_loss`, on
   ``zoo.training.rl``).

After ``meta_iterations`` iterations, *target-aware transfer*: plain fine-tuning on target batches with the
injected optimiser; the best checkpoint on the target dev set (``val/acc``) is the model (configs' ModelCheckpoint).

Baselines in the same module (``strategy``): ``uniform`` (the same Reptile meta-transfer with equal weights and
uniformly drawn sources), ``exp3`` (an EXP3 bandit over sources, Auer et al. 2002, rewarded with the same
``r_i``), ``multitask`` (joint training on all source batches and the target batch, then fine-tuning) and
``target_only`` (fine-tuning alone).

The scorer (:class:`MCScorer`) reads a prompt and a choice with a Hugging Face encoder (default the offline
MiniLM) and maps ``[q; c; q*c; |q - c|]`` to a score, softmax over the choices (a bi-encoder: [INTERP] the paper
uses a BERT cross-encoder; on 2 CPU cores the default keeps the encoder frozen and cached, ``trainable_layers=0``,
and trains the head; ``trainable_layers=k`` fine-tunes the top k transformer layers too).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from zoo.training.base import ZooModule
from zoo.training.inner_loop import Params, adapt, functional_forward, reptile_interpolate
from zoo.training.rl import categorical_entropy, epsilon_greedy, reinforce_loss, update_baseline

STRATEGIES = ("meta_rtl", "uniform", "exp3", "multitask", "target_only")
REWARD_NORMALIZATIONS = ("none", "iteration")


# -- pure pieces ------------------------------------------------------------------------------------------------

def source_rewards(general_loss: torch.Tensor, task_losses: torch.Tensor) -> torch.Tensor:
    """Meta-RTL's reward per source: the meta model's loss on target data minus the loss of the source's
    temporal meta-model on the same data, ``r_i = L(theta; B_T) - L(theta_i; B_T)`` (abstract of the paper)."""
    return (general_loss - task_losses).detach()


def weighted_reptile_update(theta: Params, adapted: Sequence[Params], weights: torch.Tensor,
                            meta_step: float) -> Params:
    """``theta + meta_step * sum_i w_i (theta_i - theta) / sum_i w_i`` for every name of the adapted dicts.

    Since the weights are normalised, this is Reptile's interpolation towards the weighted mean of the temporal
    models (Nichol et al. 2018; section 2.4 step 4), computed by ``zoo.training.inner_loop.reptile_interpolate``.
    """
    if len(adapted) != len(weights) or not adapted:
        raise ValueError(f"weighted_reptile_update: {len(adapted)} adapted models for {len(weights)} weights")
    w = weights.detach().to(torch.float64)
    if bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"weighted_reptile_update: weights must be >= 0 with a positive sum, got {w.tolist()}")
    w = w / w.sum()
    mean = {n: sum(float(wi) * a[n] for wi, a in zip(w, adapted)) for n in adapted[0]}
    return reptile_interpolate(theta, mean, meta_step)


def policy_gradient_loss(logits: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                         baseline: torch.Tensor | float, epsilon: float, entropy_coeff: float) -> torch.Tensor:
    """REINFORCE loss of the source policy for the sources drawn at one iteration.

    ``logits``: ``[K]`` policy scores; ``actions``: ``[n]`` drawn sources; ``rewards``: ``[n]`` their rewards.
    The log-probability of a draw is under the epsilon-greedy mixture it was drawn from,
    ``log((1 - eps) softmax(logits)_a + eps / K)`` (as ``zoo.training.rl.epsilon_greedy`` returns it); the loss is
    ``zoo.training.rl.reinforce_loss``: ``-mean((r - b) log pi(a)) - entropy_coeff * H(softmax(logits))``.
    """
    k = logits.shape[-1]
    mixed = (1.0 - epsilon) * torch.softmax(logits, -1) + epsilon / k
    logp = torch.log(mixed[actions])
    entropy = categorical_entropy(logits).expand_as(logp)
    return reinforce_loss(logp, rewards, baseline, entropy, entropy_coeff)


def normalise_rewards(rewards: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """One iteration's rewards standardised over the sources drawn in it, ``(r - mean r) / (std r + eps)``
    (population std; a single source, or equal rewards, give zeros).

    [INTERP] A switch of this zoo (``reward_normalization: iteration``), not of the paper: the raw reward
    ``L(theta; B_T) - L(theta_i; B_T)`` mixes how hard the target batch is for every source alike with how
    much each source helps; per-iteration standardisation keeps only the second, the comparison between the
    sources drawn together, and puts the rewards on one scale whatever the loss's.
    """
    if rewards.numel() < 2:
        return torch.zeros_like(rewards)
    centred = rewards - rewards.mean()
    return centred / (centred.pow(2).mean().sqrt() + eps)


def exp3_probabilities(log_weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """EXP3's arm probabilities ``(1 - gamma) w / sum w + gamma / K`` (Auer et al. 2002, Fig. 1)."""
    return (1.0 - gamma) * torch.softmax(log_weights, -1) + gamma / log_weights.shape[-1]


def exp3_update(log_weights: torch.Tensor, probs: torch.Tensor, arm: int, reward: float, gamma: float) -> torch.Tensor:
    """EXP3's update for one pull: ``w_arm *= exp(gamma * (x / p_arm) / K)``, ``x`` in [0, 1], on log-weights."""
    if not 0.0 <= reward <= 1.0:
        raise ValueError(f"exp3_update: reward must be in [0, 1], got {reward}")
    out = log_weights.clone()
    out[arm] += gamma * reward / float(probs[arm]) / log_weights.shape[-1]
    return out - out.max()  # only ratios matter; keeps the exponent bounded


def mc_loss(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, answer)


# -- networks ---------------------------------------------------------------------------------------------------

class MCScorer(nn.Module):
    """Scores each (prompt, choice) pair: encoder embeddings ``q``, ``c`` -> MLP ``[q; c; q*c; |q-c|]`` -> scalar.

    Args:
        encoder: a :class:`zoo.nn.text_encoder.TextEncoder` (frozen or not).
        hidden: width of the MLP's hidden layer.
        trainable_layers: with an unfrozen encoder, only its top ``k`` transformer layers train (0: the encoder
            must be frozen; the head alone trains).
        cosine_prior: add ``s * cos(q, c)`` to the MLP's score, ``s`` learned (starting at 10, the MLP's last
            layer at zero): the scorer starts as the encoder's own similarity ranking instead of at chance.
            [INTERP] On WordNet-QA the untrained cosine already scores 47-78% per task; without the prior a head
            trained on 32 target items stays below that.
    """

    def __init__(self, encoder: nn.Module, hidden: int = 256, trainable_layers: int = 0, cosine_prior: bool = True):
        super().__init__()
        self.encoder = encoder
        d = encoder.out_dim
        self.head = nn.Sequential(nn.Linear(4 * d, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.cosine_scale = nn.Parameter(torch.tensor(10.0)) if cosine_prior else None
        if cosine_prior:
            nn.init.zeros_(self.head[2].weight)
            nn.init.zeros_(self.head[2].bias)
        if not getattr(encoder, "freeze", True):
            layers = _transformer_layers(encoder.model)
            if not 0 <= trainable_layers <= len(layers):
                raise ValueError(f"MCScorer trainable_layers must be in 0..{len(layers)}, got {trainable_layers}")
            for p in encoder.model.parameters():
                p.requires_grad_(False)
            for layer in layers[len(layers) - trainable_layers:]:
                for p in layer.parameters():
                    p.requires_grad_(True)
        elif trainable_layers:
            raise ValueError("MCScorer trainable_layers > 0 needs an encoder with freeze=false")

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """``[B, C]`` logits, ``-inf`` where a choice is padding."""
        mask = batch["mask"]
        b, c = mask.shape
        q = self.encoder(list(batch["prompt"]))
        flat = [ch for row in batch["choices"] for ch in row]
        e = self.encoder([t if t else "-" for t in flat]).reshape(b, c, -1)
        q = q[:, None].expand_as(e)
        logits = self.head(torch.cat([q, e, q * e, (q - e).abs()], -1)).squeeze(-1)
        if self.cosine_scale is not None:
            logits = logits + self.cosine_scale * F.cosine_similarity(q, e, dim=-1)
        return logits.masked_fill(~mask, float("-inf"))


def _transformer_layers(model: nn.Module) -> list[nn.Module]:
    for path in ("encoder.layer", "transformer.layer", "layers", "layer"):
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return list(obj)
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__} (looked for encoder.layer)")


class SourcePolicy(nn.Module):
    """Meta-RTL's policy: an LSTM cell over ``s_m = [p^{m-1}; r^{m-1}]`` and a linear head to ``K`` logits.

    [INTERP] The head starts at zero, so the first weights are uniform; the LSTM state is carried across
    iterations but gradients stop at the previous step (one-step truncated backpropagation through time).
    """

    def __init__(self, n_sources: int, hidden: int = 128):
        super().__init__()
        self.cell = nn.LSTMCell(2 * n_sources, hidden)
        self.head = nn.Linear(hidden, n_sources)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, prev_weights: torch.Tensor, prev_rewards: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = self.cell(torch.cat([prev_weights, prev_rewards])[None], (state[0][None], state[1][None]))
        return self.head(h)[0], (h[0], c[0])


# -- the system -------------------------------------------------------------------------------------------------

class MetaRTL(ZooModule):
    """Meta-RTL and its baselines (see the module docstring); manual optimisation.

    Validation and test score every multiple-choice item of the target's dev / test set: ``<stage>/acc`` (mean
    +- 95% CI over items), ``<stage>/loss``, ``<stage>/items``; ``records[stage]`` one row per item (``item``,
    ``acc``, ``loss``).

    Args:
        encoder: text encoder for :class:`MCScorer`.
        sources: the source task names, in the data module's order (their weights are logged by name).
        strategy: one of :data:`STRATEGIES`.
        meta_iterations: training steps of the meta-transfer phase (then fine-tuning on the target).
        sources_per_iteration: sources drawn per meta-iteration (with replacement; repeats share a model).
        inner_steps / inner_lr: SGD steps and step size of each temporal meta-model.
        meta_step: Reptile's outer step ``eps_meta`` (1: move to the weighted mean of the temporal models).
        hidden / trainable_layers / cosine_prior: :class:`MCScorer`.
        policy_hidden / policy_lr: LSTM size and its Adam learning rate.
        entropy_coeff / epsilon / baseline_decay: REINFORCE's entropy bonus, exploration rate and the
            moving-average baseline's decay.
        reward_scale: rewards are multiplied by it before the policy and EXP3 see them. [INTERP] With Adam the
            scale sets how much the entropy bonus counts against the policy gradient: on WordNet-QA (rewards of a
            few hundredths) 1 keeps the weights spread (0.15-0.19 after 100 iterations), 10 or 100 collapse them
            onto one source within a few dozen iterations (target-dev accuracy no better).
        reward_normalization: ``none`` (the paper's raw rewards) or ``iteration`` (:func:`normalise_rewards`:
            standardised over the sources drawn in each iteration, before ``reward_scale``; for every strategy
            that uses rewards, so EXP3 sees what the policy sees). The rewards are measured on the batch's
            ``reward_target`` when the data module draws one (``reward_batches`` > 1: several target batches,
            one loss over their union), else on its target batch.
        exp3_gamma: EXP3's exploration rate; its rewards are ``sigmoid(reward_scale * r)`` ([INTERP]: EXP3
            needs rewards in [0, 1]).
        seed: seeds the generator that draws sources (independent of the data's seed).
    """

    item_key, count_name, ci_names, prog_bar_stages = "item", "items", ("acc",), ("val", "test")

    def __init__(self, encoder: nn.Module, sources: list[str], strategy: str = "meta_rtl",
                 meta_iterations: int = 200, sources_per_iteration: int = 3, inner_steps: int = 3,
                 inner_lr: float = 0.1, meta_step: float = 1.0, hidden: int = 256, trainable_layers: int = 0,
                 cosine_prior: bool = True,
                 policy_hidden: int = 128, policy_lr: float = 3e-3, entropy_coeff: float = 1e-2,
                 epsilon: float = 0.1, baseline_decay: float = 0.9, reward_scale: float = 1.0,
                 reward_normalization: str = "none", exp3_gamma: float = 0.1, seed: int = 0,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        if strategy not in STRATEGIES:
            raise ValueError(f"MetaRTL strategy must be one of {STRATEGIES}, got {strategy!r}")
        if not sources or len(set(sources)) != len(sources):
            raise ValueError(f"MetaRTL sources must be distinct task names, got {sources!r}")
        for name, value in (("meta_iterations", meta_iterations), ("inner_steps", inner_steps)):
            if value < 0:
                raise ValueError(f"MetaRTL {name} must be >= 0, got {value}")
        if reward_normalization not in REWARD_NORMALIZATIONS:
            raise ValueError(f"MetaRTL reward_normalization must be one of {REWARD_NORMALIZATIONS}, "
                             f"got {reward_normalization!r}")
        if sources_per_iteration < 1:
            raise ValueError(f"MetaRTL sources_per_iteration must be >= 1, got {sources_per_iteration}")
        self.save_config()
        self.automatic_optimization = False
        self.scorer = MCScorer(encoder, hidden, trainable_layers, cosine_prior)
        self.sources, self.strategy = list(sources), strategy
        k = len(sources)
        self.policy = SourcePolicy(k, policy_hidden)
        # the policy's and the bandit's running state, saved with the checkpoint
        self.register_buffer("policy_h", torch.zeros(policy_hidden))
        self.register_buffer("policy_c", torch.zeros(policy_hidden))
        self.register_buffer("prev_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("prev_rewards", torch.zeros(k))
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("exp3_log_weights", torch.zeros(k))
        self.register_buffer("iterations_done", torch.zeros((), dtype=torch.long))
        self.weight_history: list[list[float]] = []  # p^m per meta-iteration
        self.reward_history: list[list[float]] = []  # r^m as the policy saw it per meta-iteration (0: not drawn)
        self.raw_reward_history: list[dict[int, float]] = []  # unnormalised r_i per meta-iteration, drawn sources
        self._generator = torch.Generator().manual_seed(seed)

    # -- optimisers ----------------------------------------------------------------------------------------------
    def trainable(self) -> Params:
        return {n: p for n, p in self.scorer.named_parameters() if p.requires_grad}

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.trainable().values()), "lr_scale": 1.0}]

    def configure_optimizers(self) -> Any:
        main = super().configure_optimizers()
        policy = torch.optim.Adam(self.policy.parameters(), lr=self.hparams.policy_lr)
        if isinstance(main, dict):
            return [main["optimizer"], policy], [main["lr_scheduler"]]
        return [main, policy]

    # -- pieces --------------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """``[B, C]`` logits of a batch of multiple-choice items, ``-inf`` where a choice is padding: the scorer
        with the model's current weights."""
        return self.scorer(batch)

    def loss_with(self, params: Params, batch: dict[str, Any]) -> torch.Tensor:
        return mc_loss(functional_forward(self.scorer, params, batch), batch["answer"])

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        names = getattr(dm, "source_names", None)
        if names is not None and list(names) != self.sources:
            raise ValueError(f"MetaRTL model.sources {self.sources} differ from the data module's sources "
                             f"{list(names)}: list the same tasks, in the same order, in both")

    def propose(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This iteration's source weights ``p^m`` (and the policy logits, for the policy gradient)."""
        k = len(self.sources)
        if self.strategy == "meta_rtl":
            logits, (h, c) = self.policy(self.prev_weights.clone(), self.prev_rewards.clone(),
                                          (self.policy_h.clone(), self.policy_c.clone()))
            self.policy_h.copy_(h.detach())
            self.policy_c.copy_(c.detach())
            return torch.softmax(logits, -1), logits
        if self.strategy == "exp3":
            return exp3_probabilities(self.exp3_log_weights, self.hparams.exp3_gamma), None
        return torch.full((k,), 1.0 / k), None

    def draw(self, weights: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        n = self.hparams.sources_per_iteration
        if logits is not None:  # the policy: epsilon-greedy around its own distribution
            actions, _ = epsilon_greedy(logits.detach().expand(n, -1), self.hparams.epsilon, self._generator)
            return actions
        return torch.multinomial(weights, n, replacement=True, generator=self._generator)

    # -- training ------------------------------------------------------------------------------------------------
    def meta_iteration(self, batch: dict[str, Any]) -> dict[str, float]:
        """Steps 1-5 of the module docstring on one batch per source and one target batch."""
        weights, logits = self.propose()
        actions = self.draw(weights.detach(), logits)
        chosen = sorted(set(actions.tolist()))
        theta = self.trainable()
        target = batch.get("reward_target", batch["target"])  # several target batches: the data's reward_batches
        with torch.no_grad():
            general = self.loss_with(theta, target)
        adapted, losses = [], []
        for i in chosen:
            phi = adapt(theta, lambda p, b=batch["sources"][self.sources[i]]: self.loss_with(p, b),
                        self.hparams.inner_steps, self.hparams.inner_lr, first_order=True)
            phi = {n: t.detach() for n, t in phi.items()}
            with torch.no_grad():
                losses.append(self.loss_with(phi, target))
            adapted.append(phi)
        rewards = source_rewards(general, torch.stack(losses))
        self.raw_reward_history.append(dict(zip(chosen, rewards.tolist())))
        if self.hparams.reward_normalization == "iteration":
            rewards = normalise_rewards(rewards)
        reward_of = dict(zip(chosen, rewards))
        with torch.no_grad():
            new = weighted_reptile_update(theta, adapted, weights.detach()[chosen], self.hparams.meta_step)
            for n, p in theta.items():
                p.copy_(new[n])
        drawn_rewards = torch.stack([reward_of[a] for a in actions.tolist()]) * self.hparams.reward_scale
        opt = self.optimizers()[1]
        opt.zero_grad()
        if self.strategy == "meta_rtl":
            loss = policy_gradient_loss(logits, actions, drawn_rewards, self.baseline, self.hparams.epsilon,
                                        self.hparams.entropy_coeff)
            self.manual_backward(loss)
            self.baseline.copy_(update_baseline(self.baseline, drawn_rewards, self.hparams.baseline_decay))
        # Every strategy steps the policy's optimiser once per meta-iteration (without gradients - uniform, exp3 -
        # Adam leaves the policy as it is). Under manual optimisation Lightning's global_step counts optimiser steps
        # and ModelCheckpoint skips an epoch whose global_step has not moved since its last save: without this
        # step the fixed-weight strategies' meta-phase epochs were never checkpoint candidates while Meta-RTL's
        # were. With it global_step equals the training steps taken in every strategy, so every strategy has the
        # same candidates (every epoch) under the same rule (tests/test_meta_rtl.py checks it).
        opt.step()
        if self.strategy == "exp3":
            for a, r in zip(actions.tolist(), drawn_rewards.tolist()):
                self.exp3_log_weights.copy_(exp3_update(self.exp3_log_weights, weights, a,
                                                        float(torch.sigmoid(torch.tensor(r))),
                                                        self.hparams.exp3_gamma))
        full_rewards = torch.zeros(len(self.sources))
        full_rewards[chosen] = rewards * self.hparams.reward_scale
        self.prev_weights.copy_(weights.detach())
        self.prev_rewards.copy_(full_rewards)
        self.weight_history.append(weights.detach().tolist())
        self.reward_history.append(full_rewards.tolist())
        stats = {"train/general_loss": float(general), "train/reward": float(rewards.mean())}
        stats.update({f"weights/{s}": float(w) for s, w in zip(self.sources, weights.tolist())})
        return stats

    def supervised_step(self, batches: list[dict[str, Any]]) -> dict[str, float]:
        opt = self.optimizers()[0]
        loss = torch.stack([mc_loss(self.scorer(b), b["answer"]) for b in batches]).mean()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return {"train/loss": float(loss.detach())}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        meta_phase = int(self.iterations_done) < self.hparams.meta_iterations and self.strategy != "target_only"
        if meta_phase and self.strategy == "multitask":
            stats = self.supervised_step([*batch["sources"].values(), batch["target"]])
        elif meta_phase:
            stats = self.meta_iteration(batch)
        else:
            stats = self.supervised_step([batch["target"]])
        self.iterations_done += 1
        self.log_dict({**stats, "train/meta_phase": float(meta_phase)}, batch_size=len(batch["target"]["answer"]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["meta_rtl_weight_history"] = self.weight_history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.weight_history = [list(w) for w in checkpoint.get("meta_rtl_weight_history", [])]

    def configure_callbacks(self) -> list[Any]:
        """The source-weight picture (``source_weights.png``, a W&B line plot) is drawn by a callback."""
        from callbacks.source_weights import SourceWeightsPlot

        return [SourceWeightsPlot()]

    # -- evaluation (dispatch, gathering, mean +- CI and records: zoo.training.base.ZooModule) ---------------------------
    def evaluate_batch(self, batch: dict[str, Any], batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """Each multiple-choice item's correctness (``acc``) and cross-entropy (``loss``) under the current weights."""
        logits = self.scorer(batch)
        correct = (logits.argmax(-1) == batch["answer"]).float()
        loss = F.cross_entropy(logits, batch["answer"], reduction="none")
        return {"index": batch["index"], "acc": correct.detach(), "loss": loss.detach()}

    @property
    def item_records(self) -> dict[str, dict[int, float]]:
        """Deprecated: ``{stage: {item index: correct}}``, the old form of :attr:`records` (read ``records[stage]``,
        rows ``{"item", "acc", "loss"}``); kept for code written before the evaluation template."""
        warnings.warn("item_records is deprecated; read records[stage]", DeprecationWarning, stacklevel=2)
        return {stage: {r["item"]: r["acc"] for r in rows} for stage, rows in self.records.items()}

