"""GPAM (Guo, Zhang et al., arXiv 2410.20320): few-shot relation classification with none-of-the-above (NOTA) by
Gaussian prototypes and adaptive margins, and the NOTA baselines it is measured against, in one harness.

No official code exists; the method is reconstructed from the abstract and a third-party review
(``shared/methods/proto-triplet-icnn_gpam_raml.md`` section 2.3). Every reconstruction choice is marked [INTERP]
and is a constructor switch.

* **Semi-factual views** (:func:`semi_factual_views`): each instance is encoded four times: ``main`` (as written),
  ``head`` / ``tail`` (that entity replaced by its type string: for WordNet-Rel its hypernym lemma, for FewRel a
  QID-to-type file or a generic token) and ``context`` (a share of context words replaced by WordNet synonyms,
  made by the data module). Each view becomes ``concat(h_head, h_tail)`` of the entity-marked encoder
  (``zoo.nn.relation_encoder``), then a trainable projection.
* **Gaussian prototypes** (:func:`gaussian_prototypes`): per class, the mean and diagonal variance over its K x V
  support view features; [INTERP] the variance is shrunk toward a learned prior (``shrinkage`` pseudo-samples),
  since 4 views of one shot estimate a d-dimensional variance poorly. Distance (:func:`gaussian_distance`):
  ``D(q, c) = mean_d [(q_d - mu_cd)^2 / s_cd^2 + log s_cd^2]``, i.e. the spec's ``-2 log N(q; mu_c, s_c^2)`` up to a
  constant, divided by d so that its scale does not grow with the projection size.
* **Adaptive margins** (:func:`class_radius`): [INTERP] class c's boundary is ``r_c = 1 + m_c + a * m_c + b`` with
  ``m_c = mean_d log s_cd^2``: ``1 + m_c`` is the expected D of a sample of the class's own Gaussian, and the learned
  ``a``, ``b`` move it; ``adaptive_margin=False`` uses one learned radius ``1 + b`` for every class.
* **Loss** (:func:`gpam_loss_terms`): cross-entropy over ``-D / tau`` among the N known classes for known queries
  (the contrastive term), plus ``range_weight`` x mean ``max(0, D(q, c_y) - r_y)`` (known queries inside their
  boundary) plus ``margin_weight`` x mean ``max(0, r_c + m - D(x, c))`` over negatives (NOTA queries against every
  class and, with ``negatives="nota+other"``, known queries against the other classes: negative sampling).
* **NOTA** (:func:`boundary_predict`): the nearest class if the query lies inside its boundary, else NOTA.

Baselines (:class:`ProtoNOTA`): ProtoNet on the same entity features (point prototypes, squared Euclidean
distance per dimension) with NOTA when the nearest prototype is farther than a threshold tuned on the validation
episodes (``nota="threshold"``), or with the FewRel toolkit's NOTA logit, the minimum class logit minus 1, trained
by cross-entropy over N + 1 classes (``nota="logit"``; it can never predict NOTA - a logit 1 below the smallest
class logit is never the largest, so the argmax is always a class - which is why the toolkit's ProtoNet scores
poorly with NOTA, and why the benchmarks make no claim against it). ``views`` gives ProtoNet GPAM's four views
(prototype = mean over the K x V support view features, query = mean of its views): the multi-view baseline, the
one that sees the same inputs as GPAM. Ablations are GPAM switches: ``views=["main"]``, ``prototype="point"``,
``adaptive_margin=False``.

Every module here is evaluated the same way (:class:`NotaRelationModule`): accuracy over N + 1 classes per episode
(mean +- 95% CI over the fixed episodes) and NOTA precision / recall / F1 pooled over all queries, on the
validation set and on one fixed test set per NOTA rate, logged as ``test/nota<rate>/acc`` and so on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from datamodules.episodes import Episode
from datamodules.relations.base import rate_name
from zoo.training.episodic import EpisodicModule
from zoo.nn.relation_encoder import EntityMarkerEncoder

VIEWS = ("main", "head", "tail", "context")

# -- pure functions -------------------------------------------------------------------------------------------------


def semi_factual_views(tokens: Sequence[str], head: Sequence[int], tail: Sequence[int], head_type: str,
                       tail_type: str, context_tokens: Sequence[str], views: Sequence[str] = VIEWS
                       ) -> list[tuple[list[str], list[int], list[int]]]:
    """The requested views of one instance as ``(tokens, head span, tail span)`` (inclusive spans).

    ``head`` / ``tail``: that entity's tokens replaced by the words of its type string (spans shifted to match);
    ``context``: ``context_tokens`` (same length as ``tokens``, entities untouched) with the original spans.
    """
    head, tail = [int(head[0]), int(head[1])], [int(tail[0]), int(tail[1])]
    out = []
    for v in views:
        if v == "main":
            out.append((list(tokens), head, tail))
        elif v == "context":
            if len(context_tokens) != len(tokens):
                raise ValueError(f"context_tokens has {len(context_tokens)} tokens, the instance {len(tokens)}")
            out.append((list(context_tokens), head, tail))
        elif v in ("head", "tail"):
            span, other, words = (head, tail, head_type.split()) if v == "head" else (tail, head, tail_type.split())
            if not words:
                raise ValueError(f"the {v} type string is empty")
            new = list(tokens[: span[0]]) + words + list(tokens[span[1] + 1:])
            shift = len(words) - (span[1] - span[0] + 1)
            moved = [other[0] + shift, other[1] + shift] if other[0] > span[1] else other
            replaced = [span[0], span[0] + len(words) - 1]
            out.append((new, replaced, moved) if v == "head" else (new, moved, replaced))
        else:
            raise ValueError(f"unknown view {v!r}; views are {VIEWS}")
    return out


def gaussian_prototypes(features: torch.Tensor, prior_var: torch.Tensor | None = None, shrinkage: float = 0.0,
                        eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and diagonal variance of each class's support view features ``[N, M, d]`` -> ``[N, d]`` each.

    ``var = (M * s^2 + shrinkage * prior_var) / (M + shrinkage) + eps`` with ``s^2`` the (biased) variance over the
    M = K x V samples: ``shrinkage`` = 0 is the plain estimate of section 2.3, larger values pull it toward
    ``prior_var`` [INTERP].
    """
    m = features.shape[1]
    mu = features.mean(1)
    var = features.var(1, unbiased=False)
    if shrinkage > 0:
        if prior_var is None:
            raise ValueError("shrinkage > 0 needs a prior variance")
        var = (m * var + shrinkage * prior_var) / (m + shrinkage)
    return mu, var + eps


def gaussian_distance(queries: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``D[q, c] = mean_d ((x_qd - mu_cd)^2 / var_cd + log var_cd)``: ``[Q, d]``, ``[N, d]``, ``[N, d]`` -> ``[Q, N]``.

    With ``var`` = 1 it is the mean squared Euclidean distance (a point prototype).
    """
    diff = queries.unsqueeze(1) - mu.unsqueeze(0)
    return (diff.pow(2) / var.unsqueeze(0) + var.log().unsqueeze(0)).mean(-1)


def class_radius(var: torch.Tensor, a: torch.Tensor, b: torch.Tensor, adaptive: bool = True,
                 metric: str = "gaussian") -> torch.Tensor:
    """Boundary ``r_c`` of each class from the variance ``[N, d]`` of its support view features.

    ``metric="gaussian"`` (D of :func:`gaussian_distance` with the class variance): ``1 + m_c + a m_c + b`` with
    ``m_c`` the mean log variance, since ``1 + m_c`` is the expected D of a sample of the class's own Gaussian.
    ``metric="point"`` (D with unit variance, the point-prototype ablation): ``e_c + a e_c + b`` with
    ``e_c = mean_d var_cd``, the expected mean squared distance of a class sample to its mean; the boundary still
    adapts to each class's spread, so the ablation removes the variance from the metric only. Not adaptive:
    ``1 + b`` for every class. See the module docstring.
    """
    if not adaptive:
        return (1 + b).expand(var.shape[0])
    if metric == "gaussian":
        m = var.log().mean(-1)
        return 1 + m + a * m + b
    if metric == "point":
        e = var.mean(-1)
        return e + a * e + b
    raise ValueError(f"class_radius metric must be 'gaussian' or 'point', got {metric!r}")


def gpam_loss_terms(dist: torch.Tensor, radius: torch.Tensor, labels: torch.Tensor, tau: float = 1.0,
                    margin: float = 0.5, negatives: str = "nota+other") -> dict[str, torch.Tensor]:
    """The three terms of GPAM's loss for one episode (``labels == N`` marks NOTA queries).

    ``contrastive``: cross-entropy of ``-dist / tau`` over the N classes, known queries only (0 if none);
    ``range``: mean ``max(0, dist[q, y_q] - r_{y_q})`` over known queries; ``margin``: mean
    ``max(0, r_c + margin - dist[q, c])`` over negative (query, class) pairs: NOTA queries with every class, and
    with ``negatives="nota+other"`` also known queries with every class but their own (0 if there are none).
    """
    if negatives not in ("nota", "nota+other"):
        raise ValueError(f"negatives must be 'nota' or 'nota+other', got {negatives!r}")
    n = dist.shape[1]
    known = labels < n
    zero = dist.sum() * 0
    if known.any():
        contrastive = F.cross_entropy(-dist[known] / tau, labels[known])
        own = dist[known].gather(1, labels[known].unsqueeze(1)).squeeze(1)
        range_term = F.relu(own - radius[labels[known]]).mean()
    else:
        contrastive = range_term = zero
    neg = ~known.unsqueeze(1).expand_as(dist).clone()
    if negatives == "nota+other":
        neg[known] = ~F.one_hot(labels[known], n).bool()
    hinge = F.relu(radius.unsqueeze(0) + margin - dist)
    margin_term = hinge[neg].mean() if neg.any() else zero
    return {"contrastive": contrastive, "range": range_term, "margin": margin_term}


def boundary_predict(dist: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """The nearest class if ``dist`` to it is within its ``radius``, else NOTA (label N): ``[Q, N]`` -> ``[Q]``."""
    best, nearest = dist.min(1)
    return torch.where(best <= radius[nearest], nearest, torch.full_like(nearest, dist.shape[1]))


def nota_counts(pred: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """``[correct, queries, NOTA true positives, false positives, false negatives]`` of one episode."""
    p, t = pred == n_way, labels == n_way
    return torch.stack([(pred == labels).sum(), torch.tensor(len(labels), device=pred.device), (p & t).sum(),
                        (p & ~t).sum(), (~p & t).sum()]).float()


def nota_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """NOTA precision, recall and F1 from pooled counts (0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def tune_threshold(best_dist: torch.Tensor, correct_known: torch.Tensor, is_nota: torch.Tensor) -> float:
    """The threshold t maximising accuracy over N + 1 when a query is NOTA iff its nearest distance exceeds t.

    ``best_dist``: each query's distance to its nearest prototype; ``correct_known``: the nearest class is its
    label; ``is_nota``: it is a NOTA query. Candidates are midpoints between sorted distances (and both ends).
    """
    d, order = best_dist.sort()
    ok, nota = correct_known[order].float(), is_nota[order].float()
    # threshold between position i-1 and i: queries [0, i) answered as classes, [i, n) as NOTA
    right = torch.cat([ok.new_zeros(1), ok.cumsum(0)]) + torch.cat([nota.flip(0).cumsum(0).flip(0), nota.new_zeros(1)])
    i = int(right.argmax())
    if i == 0:
        return float(d[0]) - 1.0
    if i == len(d):
        return float(d[-1]) + 1.0
    return float((d[i - 1] + d[i]) / 2)


# -- the harness ----------------------------------------------------------------------------------------------------

class NotaRelationModule(EpisodicModule):
    """What every NOTA relation classifier here shares: entity features of views, the projection, the evaluation.

    An episodic classifier (:class:`zoo.training.episodic.EpisodicModule`: its training step, the evaluation template of
    :class:`zoo.training.base.ZooModule`) whose predictions range over N + 1 labels. A subclass implements
    ``episode_outputs(episode) -> (loss, terms, predictions [Q] in 0..N)``; one whose NOTA decision is tuned on the
    validation episodes also implements :meth:`query_record`, :meth:`calibrate` and :meth:`recount`.

    ``records["val"]`` and ``records["test/<rate>"]`` (one per test NOTA rate) hold one row per episode
    (``episode``, ``acc``, ``loss``, ``nota_tp``, ``nota_fp``, ``nota_fn``); ``records["test"]`` all test rows,
    each with its ``na_rate``.

    Args:
        encoder: a :class:`zoo.nn.text_encoder.TextEncoder` (frozen on CPU: its entity features are cached).
        entity_pooling: ``"span"`` or ``"marker"`` (see :mod:`zoo.nn.relation_encoder`).
        projection_dim: size of the trainable projection of ``concat(h_head, h_tail)``.
    """

    def __init__(self, encoder: nn.Module, entity_pooling: str = "span", projection_dim: int = 256,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(optimizer, scheduler)
        self.entities = EntityMarkerEncoder(encoder, entity_pooling)
        self.projection = nn.Linear(self.entities.out_dim, projection_dim)

    # -- features ------------------------------------------------------------------------------------------------
    def view_features(self, episode: Episode, views: Sequence[str]) -> torch.Tensor:
        """Projected features ``[V, n_items, d]`` of every support and query item of ``episode`` in each view."""
        x = episode.extras
        needed = ["tokens", "head", "tail"] + (["head_type", "tail_type", "context_tokens"] if set(views) - {"main"}
                                               else [])
        missing = [k for k in needed if k not in x]
        if missing:
            raise ValueError(f"{type(self).__name__} needs relation episodes (datamodules.relations); the episode "
                             f"has no extras {missing}")
        n = len(x["tokens"])
        instances, names = [], []
        for i in range(n):
            vs = semi_factual_views(x["tokens"][i], x["head"][i], x["tail"][i], x.get("head_type", [""] * n)[i],
                                    x.get("tail_type", [""] * n)[i], x.get("context_tokens", x["tokens"])[i], views)
            for v, inst in zip(views, vs):
                instances.append(inst)
                names.append(f"episode {episode.index}, item {i} ({' '.join(x['tokens'][i][:8])} ...), {v} view")
        feats = self.projection(self.entities(instances, names))
        return feats.reshape(n, len(views), -1).transpose(0, 1)

    def encode_items(self, source: Any, views: Sequence[str] = VIEWS, batch: int = 256) -> int:
        """Compute the entity features of every item of a relation ``source`` in ``views`` (with a frozen encoder
        they are cached, so a benchmark pays the encoder once, before any timing); returns the item count."""
        f = source.fields
        for start in range(0, len(source), batch):
            instances = []
            for i in range(start, min(start + batch, len(source))):
                instances += semi_factual_views(f["tokens"][i], f["head"][i], f["tail"][i], f["head_type"][i],
                                                f["tail_type"][i], f["context_tokens"][i], views)
            with torch.no_grad():
                self.entities(instances)
        return len(source)

    # -- what a method provides ----------------------------------------------------------------------------------
    def episode_outputs(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        raise NotImplementedError  # pragma: no cover - interface

    def query_record(self, episode: Episode) -> dict[str, torch.Tensor] | None:
        """What :meth:`calibrate` needs of a validation episode just scored, one row ``[1, ...]`` per entry (the
        template gathers them with the episode's other results); default: nothing to calibrate."""
        return None

    def calibrate(self, stage: str, queries: dict[str, torch.Tensor]) -> None:
        """Tune the NOTA decision on the validation episodes' :meth:`query_record` entries (every episode once,
        sorted by index, gathered from every rank); default: nothing."""

    def recount(self, queries: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        """``[episodes, 5]`` :func:`nota_counts` of the validation episodes under the calibrated decision."""
        raise NotImplementedError

    # -- steps (training: zoo.training.episodic.EpisodicModule; dispatch and gathering: zoo.training.base.ZooModule) -----------------
    def scored_episode(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        loss, terms, pred = self.episode_outputs(episode)
        return loss, pred, terms

    def evaluate_batch(self, episode: Episode, batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """One episode's loss and :func:`nota_counts` (and, in validation, what calibration needs)."""
        loss, _, pred = self.episode_outputs(episode)
        counts = nota_counts(pred, episode.query_y, episode.n_way)
        items = {"index": torch.tensor([int(episode.index)], device=counts.device),
                 "loss": torch.tensor([float(loss)], device=counts.device), "counts": counts.reshape(1, -1)}
        record = self.query_record(episode) if stage == "val" else None
        return {**items, **{f"query_{k}": v for k, v in (record or {}).items()}}

    def eval_set(self, stage: str, dataloader_idx: int) -> tuple[str, dict[str, Any]]:
        """Validation: one set; test: one fixed set per NOTA rate of the data module, logged as
        ``test/nota<rate>/...`` and marked ``na_rate`` in ``records["test"]``."""
        if stage == "val":
            return stage, {}
        rates = getattr(getattr(self._trainer, "datamodule", None), "test_na_rates", None) if self._trainer else None
        if rates is None:
            return f"{stage}/{dataloader_idx}", {"na_rate": dataloader_idx}
        return f"{stage}/{rate_name(rates[dataloader_idx])}", {"na_rate": rates[dataloader_idx]}

    def summarise_items(self, stage: str, index: torch.Tensor, values: dict[str, torch.Tensor]
                        ) -> list[dict[str, Any]]:
        """Accuracy over N + 1 per episode (mean +- 95% CI), NOTA precision / recall / F1 pooled over all queries.

        In validation a calibrating subclass first tunes its decision and recounts, so ``val/acc`` is that of the
        model that is saved.
        """
        counts = values["counts"]
        queries = {k[len("query_"):]: v for k, v in values.items() if k.startswith("query_")}
        if queries:
            self.calibrate(stage, queries)
            counts = self.recount(queries).to(counts.dtype)
        acc = counts[:, 0] / counts[:, 1]
        self.log_items(stage, index, {"acc": acc, "loss": values["loss"], "counts": counts}, ci=("acc",),
                       count_name="episodes", prog_bar=stage == "val")
        tp, fp, fn = (float(v) for v in counts[:, 2:].sum(0))
        precision, recall, f1 = nota_f1(tp, fp, fn)
        if self._trainer is not None and not self.trainer.sanity_checking:
            self.log_dict({f"{stage}/nota_f1": f1, f"{stage}/nota_precision": precision,
                           f"{stage}/nota_recall": recall}, batch_size=len(index))
        return [{"episode": int(i), "acc": float(a), "loss": float(lo), "nota_tp": int(c[2]), "nota_fp": int(c[3]),
                 "nota_fn": int(c[4])} for i, a, lo, c in zip(index, acc, values["loss"], counts)]

    def predict_step(self, episode: Episode, batch_idx: int) -> dict[str, Any]:
        """Predicted labels over N + 1 (``n_way`` = NOTA) of an episode's queries."""
        return {"pred": self.episode_outputs(episode)[2].cpu(), "extras": episode.extras}


class GPAM(NotaRelationModule):
    """GPAM (see the module docstring); every [INTERP] choice is an argument.

    Args:
        encoder / entity_pooling / projection_dim: see :class:`NotaRelationModule`.
        views: which semi-factual views build the prototypes (``["main"]``: the no-views ablation).
        query_fusion: [INTERP] a query's feature: ``"mean"`` of its views or its ``"main"`` view.
        prototype: ``"gaussian"`` or ``"point"`` (unit variance in the distance: the no-variance ablation; the
            boundary still adapts to each class's spread, see :func:`class_radius`).
        shrinkage: [INTERP] pseudo-samples of the learned prior variance in each class's variance.
        adaptive_margin: per-class boundaries from the class variance, or one learned radius.
        tau: temperature of the contrastive term.
        margin: how far outside a boundary a negative must lie.
        range_weight / margin_weight: weights of the range and margin terms.
        negatives: ``"nota"`` or ``"nota+other"`` (negative sampling also from the episode's other classes).
    """

    def __init__(self, encoder: nn.Module, entity_pooling: str = "span", projection_dim: int = 256,
                 views: list[str] | None = None, query_fusion: str = "mean", prototype: str = "gaussian",
                 shrinkage: float = 1.0, adaptive_margin: bool = True, tau: float = 0.1, margin: float = 0.5,
                 range_weight: float = 1.0, margin_weight: float = 1.0, negatives: str = "nota+other",
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(encoder, entity_pooling, projection_dim, optimizer, scheduler)
        views = list(views) if views is not None else list(VIEWS)
        if not views or views[0] != "main" or not set(views) <= set(VIEWS) or len(set(views)) != len(views):
            raise ValueError(f"GPAM views must start with 'main' and name distinct views among {VIEWS}, got {views}")
        if query_fusion not in ("mean", "main"):
            raise ValueError(f"GPAM query_fusion must be 'mean' or 'main', got {query_fusion!r}")
        if prototype not in ("gaussian", "point"):
            raise ValueError(f"GPAM prototype must be 'gaussian' or 'point', got {prototype!r}")
        if negatives not in ("nota", "nota+other"):
            raise ValueError(f"GPAM negatives must be 'nota' or 'nota+other', got {negatives!r}")
        if tau <= 0 or shrinkage < 0 or margin < 0:
            raise ValueError(f"GPAM needs tau > 0, shrinkage >= 0, margin >= 0; got {tau}, {shrinkage}, {margin}")
        self.save_config()
        self.views, self.query_fusion, self.prototype = views, query_fusion, prototype
        self.shrinkage, self.adaptive_margin, self.tau, self.margin = shrinkage, adaptive_margin, tau, margin
        self.range_weight, self.margin_weight, self.negatives = range_weight, margin_weight, negatives
        self.log_prior_var = nn.Parameter(torch.zeros(projection_dim))
        self.radius_a = nn.Parameter(torch.zeros(()))
        self.radius_b = nn.Parameter(torch.zeros(()))

    def distances(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Query-to-class distances ``[Q, N]`` and class radii ``[N]`` of one episode."""
        feats = self.view_features(episode, self.views)  # [V, items, d]
        n, k = episode.n_way, episode.k_shot
        n_support = n * k
        support = feats[:, :n_support].transpose(0, 1).reshape(n, k * len(self.views), -1)  # class-major support
        query = feats[:, n_support:].mean(0) if self.query_fusion == "mean" else feats[0, n_support:]
        mu, var = gaussian_prototypes(support, self.log_prior_var.exp(), self.shrinkage)
        # the point ablation drops the variance from the metric, not from the boundary (the spread of the support
        # views still sets each class's radius), so it isolates what the Gaussian metric adds
        metric_var = var if self.prototype == "gaussian" else torch.ones_like(var)
        dist = gaussian_distance(query, mu, metric_var)
        return dist, class_radius(var, self.radius_a, self.radius_b, self.adaptive_margin, self.prototype)

    def episode_outputs(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        dist, radius = self.distances(episode)
        terms = gpam_loss_terms(dist, radius, episode.query_y, self.tau, self.margin, self.negatives)
        loss = terms["contrastive"] + self.range_weight * terms["range"] + self.margin_weight * terms["margin"]
        return loss, terms, boundary_predict(dist.detach(), radius.detach())


class ProtoNOTA(NotaRelationModule):
    """ProtoNet on the entity features of the given views, with NOTA by a tuned threshold or the FewRel NOTA logit.

    Args:
        encoder / entity_pooling / projection_dim: see :class:`NotaRelationModule`.
        views: the views that build prototypes and queries (``["main"]``: plain ProtoNet; GPAM's four views: the
            multi-view baseline that sees every input GPAM sees, averaged as GPAM averages them).
        nota: ``"threshold"``: trained by cross-entropy over the N classes on known queries; a query is NOTA when
            its nearest prototype is farther than ``threshold``, chosen after every validation to maximise
            validation accuracy over N + 1 (and saved with the weights; under DDP it is tuned on every rank's
            validation episodes gathered, so every rank holds the single-process threshold). ``"logit"``: the thunlp/FewRel toolkit's
            ``Proto``: a NOTA logit = min class logit - 1, cross-entropy over N + 1 on all queries.
    """

    def __init__(self, encoder: nn.Module, entity_pooling: str = "span", projection_dim: int = 256,
                 nota: str = "threshold", views: list[str] | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam, scheduler: LRSchedulerCallable | None = None):
        super().__init__(encoder, entity_pooling, projection_dim, optimizer, scheduler)
        if nota not in ("threshold", "logit"):
            raise ValueError(f"ProtoNOTA nota must be 'threshold' or 'logit', got {nota!r}")
        views = list(views) if views is not None else ["main"]
        if not views or views[0] != "main" or not set(views) <= set(VIEWS) or len(set(views)) != len(views):
            raise ValueError(f"ProtoNOTA views must start with 'main' and name distinct views among {VIEWS}, got "
                             f"{views}")
        self.save_config()
        self.nota, self.views = nota, views
        self.register_buffer("threshold", torch.tensor(float("inf")))

    def distances(self, episode: Episode) -> torch.Tensor:
        """Mean squared Euclidean distance ``[Q, N]`` of each query's view mean to each class's point prototype,
        the mean of its K x V support view features (GPAM's ``mu_c`` and query fusion, without variance or margin).
        """
        feats = self.view_features(episode, self.views)  # [V, items, d]
        n_support = len(episode.support_y)
        support = feats[:, :n_support].transpose(0, 1).reshape(episode.n_way, episode.k_shot * len(self.views), -1)
        protos = support.mean(1)
        return gaussian_distance(feats[:, n_support:].mean(0), protos, torch.ones_like(protos))

    def episode_outputs(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        dist = self.distances(episode)
        n, y = episode.n_way, episode.query_y
        if self.nota == "logit":
            logits = -dist
            logits = torch.cat([logits, logits.min(1, keepdim=True).values - 1], 1)
            return F.cross_entropy(logits, y), {}, logits.detach().argmax(1)
        known = y < n
        loss = F.cross_entropy(-dist[known], y[known]) if known.any() else dist.sum() * 0
        best, nearest = dist.detach().min(1)
        self._last = (best, nearest)  # for query_record: what threshold tuning needs
        pred = torch.where(best > self.threshold, torch.full_like(nearest, n), nearest)
        return loss, {}, pred

    def query_record(self, episode: Episode) -> dict[str, torch.Tensor] | None:
        if self.nota != "threshold":
            return None
        best, nearest = self._last
        return {"best": best.reshape(1, -1), "nearest": nearest.reshape(1, -1),
                "y": episode.query_y.reshape(1, -1), "n": torch.tensor([episode.n_way], device=best.device)}

    def calibrate(self, stage: str, queries: dict[str, torch.Tensor]) -> None:
        y = queries["y"]
        best = queries["best"].reshape(-1)
        correct = (queries["nearest"] == y).reshape(-1)
        is_nota = (y == queries["n"].unsqueeze(1)).reshape(-1)
        self.threshold.fill_(tune_threshold(best, correct, is_nota))

    def recount(self, queries: dict[str, torch.Tensor]) -> torch.Tensor:
        threshold = self.threshold.cpu()
        rows = []
        for best, nearest, y, n in zip(queries["best"], queries["nearest"], queries["y"], queries["n"].tolist()):
            pred = torch.where(best.cpu() > threshold, torch.full_like(nearest, n), nearest)
            rows.append(nota_counts(pred.cpu(), y.cpu(), n))
        return torch.stack(rows)
