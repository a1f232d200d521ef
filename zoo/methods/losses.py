"""Few-shot metric losses as pure functions on embedding tensors (no module state, any device, any float dtype).

What is here, and where each piece comes from:

* ``euclidean_distance`` / ``squared_euclidean``: the pairwise distances every loss below is built on.
* ``prototypes`` / ``prototypical_logits``: Prototypical Networks (Snell et al., NeurIPS 2017, eq. 1-2).
* ``proto_triplet_loss``: the Proto-Triplet loss of SuSana Distancia (Mendez-Ruiz et al., arXiv 2305.09062),
  ported from ``proto_triplet_loss`` in the official code ``maumruiz/FSL-Loss/algorithms/icnn_loss.py``.
* ``icnn_score`` / ``icnn_loss``: the modified ICNN (inter- and intra-class nearest neighbours) score of the same
  paper, ported line by line from ``modified_score`` in that file, as read in its two published copies
  (``maumruiz/FewShot-KidneyStones/pro-fewshot/algorithms/icnn_loss.py``, the authors' development history, and
  ``DanielF29/PPs_ICNN_Loss/algorithms/icnn_score_modified.py``, which are identical), with the official
  drop-first-neighbour quirk fixed behind a flag.
* ``LOSS_TERMS``, ``OFFICIAL_PRESETS``, ``validate_loss_terms``, ``episode_loss_terms``, ``combine_loss_terms``:
  the term selection and equal-weight averaging of the official ``get_icnn_loss``, with the names validated.

Two places where this port deliberately differs from the official code (both documented where they happen):
the scored point is excluded from its own neighbours by index rather than by dropping the nearest neighbour
(the official rule also drops a real neighbour when the targets are another set, e.g. ``queryicnn``), and an
unknown or misspelt term name is an error (the official substring match silently skipped ``fullicn``, the typo of
its miniImageNet ResNet-12 scripts, while still counting it in the divisor of the average).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

# The two small constants of the official code: inside the square root of every distance (``nearest_neighbors``)
# and in the denominators of ``modified_score``. They are kept so the numbers match the reference.
DISTANCE_EPS = 1e-6
ICNN_EPS = 1e-7

LOSS_TERMS: tuple[str, ...] = ("cross", "suppicnn", "queryicnn", "fullicnn", "prototriplet")
"""Valid term names, spelt as in the official ``--losses`` option.

* ``cross``: cross-entropy of the prototypical logits (plain ProtoNet).
* ``suppicnn``: ``-log`` ICNN score of the support embeddings among themselves.
* ``queryicnn``: ``-log`` ICNN score of the queries against the support (or the prototypes, ``query_protos``).
* ``fullicnn``: ``-log`` ICNN score of support and queries together, ``ipc = shot + query``.
* ``prototriplet``: the Proto-Triplet hinge loss.
"""

OFFICIAL_PRESETS: dict[int, list[str]] = {
    1: ["cross", "suppicnn"],
    2: ["cross", "suppicnn", "queryicnn"],
    3: ["suppicnn"],
    4: ["suppicnn", "queryicnn"],
    5: ["cross", "suppicnn", "queryicnn"],
    6: ["suppicnn", "queryicnn"],
    7: ["cross", "fullicnn"],
    8: ["fullicnn"],
    9: ["cross", "prototriplet"],
    10: ["prototriplet"],
    11: ["prototriplet", "fullicnn"],
    12: ["cross", "prototriplet", "fullicnn"],
}
"""The 12 loss configurations (``--tag``) of ``maumruiz/FSL-Loss/scripts/{CUB,Cars,Dogs,Caltech}/loss-*.sh``.

Tags 5 and 6 differ from 2 and 4 only by ``--query_protos`` (``queryicnn`` scores the queries against the
prototypes instead of the support): see ``OFFICIAL_QUERY_PROTOS`` and ``official_preset``. Which tag the paper's
"Proto-Triplet" and "ICNN" rows are is not stated in the code; the likely reading is 9 (``cross,prototriplet``),
7 (``cross,fullicnn``) and 12 for the combination.
"""

OFFICIAL_QUERY_PROTOS: frozenset[int] = frozenset({5, 6})
"""The official tags run with ``--query_protos``."""


def official_preset(tag: int) -> tuple[list[str], bool]:
    """``(term names, query_protos)`` of official configuration ``tag`` (1..12), ready for ``episode_loss_terms``."""
    if tag not in OFFICIAL_PRESETS:
        raise ValueError(f"official_preset: tag must be one of {sorted(OFFICIAL_PRESETS)}, got {tag!r}")
    return list(OFFICIAL_PRESETS[tag]), tag in OFFICIAL_QUERY_PROTOS


# -- input checks ---------------------------------------------------------------------------------------------------


def _check_features(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, torch.Tensor) else ""
        raise ValueError(f"{name} must be a 2-D float tensor [num_points, dim], got {shape} {dtype}")


def _check_labels(name: str, y: torch.Tensor, n: int) -> None:
    if (not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.is_complex()
            or y.dtype == torch.bool):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be a 1-D integer tensor, got {shape}")
    if y.numel() != n:
        raise ValueError(f"{name} has {y.numel()} labels but its features have {n} rows")


# -- distances and prototypes ---------------------------------------------------------------------------------------


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances ``||a_i - b_j||^2``, shape ``[len(a), len(b)]``.

    The distance of Prototypical Networks (Snell et al. 2017, eq. 1 with d = squared Euclidean) and of the
    official SuSana Distancia ``distance_matrix``. Computed as ``||a||^2 + ||b||^2 - 2 a.b`` after both sets are
    shifted by the (detached) mean of ``b``: one matmul instead of the reference's ``[n, m, d]`` difference tensor
    (1 GB for a 400-point episode of 1600-d features), and the shift, which leaves every distance and gradient
    unchanged, keeps the cancellation error small. Clamped at 0 against rounding.
    """
    _check_features("squared_euclidean: a", a)
    _check_features("squared_euclidean: b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"squared_euclidean: a has dim {a.shape[1]} but b has dim {b.shape[1]}")
    shift = b.detach().mean(0, keepdim=True)
    a, b = a - shift, b - shift
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2.0 * (a @ b.T)
    return sq.clamp_min(0.0)


def euclidean_distance(a: torch.Tensor, b: torch.Tensor, eps: float = DISTANCE_EPS) -> torch.Tensor:
    """Pairwise Euclidean distances ``sqrt(||a_i - b_j||^2 + eps)``, shape ``[len(a), len(b)]``.

    Exactly the distance of the official ``nearest_neighbors`` (FSL-Loss ``algorithms/icnn_loss.py``), which both
    the Proto-Triplet loss and the ICNN score use. The ``eps`` inside the root keeps the gradient finite at zero
    distance (a point and itself); it also makes the smallest possible distance ``sqrt(eps) = 1e-3``.
    """
    return (squared_euclidean(a, b) + eps).sqrt()


def prototypes(support_features: torch.Tensor, support_labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class prototypes ``c_k = mean{f(x) : (x, y) in S, y = k}``, shape ``[n_way, dim]`` (Snell et al. eq. 1).

    Labels are ``0..n_way-1`` in any order and any (non-zero) count per class; on the official class-major episodes
    this equals ``support.reshape(way, shot, d).mean(1)``. The prototypes are not detached: every loss built on
    them also trains the support embeddings, as in the official code.
    """
    _check_features("prototypes: support_features", support_features)
    _check_labels("prototypes: support_labels", support_labels, support_features.shape[0])
    if not isinstance(n_way, int) or n_way < 1:
        raise ValueError(f"prototypes: n_way must be a positive int, got {n_way!r}")
    if support_labels.numel() and (int(support_labels.min()) < 0 or int(support_labels.max()) >= n_way):
        raise ValueError(f"prototypes: support_labels must lie in 0..{n_way - 1}, got "
                         f"{int(support_labels.min())}..{int(support_labels.max())}")
    onehot = F.one_hot(support_labels.long(), n_way).to(support_features.dtype)  # [S, N]
    counts = onehot.sum(0)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"prototypes: classes {missing} have no support example (n_way={n_way})")
    return (onehot.T @ support_features) / counts.unsqueeze(1)


def prototypical_logits(query: torch.Tensor, protos: torch.Tensor, distance: str = "euclidean",
                        temperature: float = 1.0) -> torch.Tensor:
    """Query logits ``[num_query, n_way]`` against the prototypes.

    * ``"euclidean"``: ``-||q - c_k||^2 / T`` (Snell et al. eq. 2; the official SuSana Distancia ProtoNet with
      ``--temperature`` T = 1).
    * ``"cosine"``: ``cos(q, c_k) / T``, the scaled-cosine variant (the scale is ``1 / T``; a T well below 1,
      e.g. 0.1, is needed for the softmax to be sharp since cosines lie in [-1, 1]).
    """
    if distance not in ("euclidean", "cosine"):
        raise ValueError(f"prototypical_logits: distance must be 'euclidean' or 'cosine', got {distance!r}")
    if not temperature > 0:
        raise ValueError(f"prototypical_logits: temperature must be > 0, got {temperature!r}")
    if distance == "euclidean":
        return -squared_euclidean(query, protos) / temperature
    _check_features("prototypical_logits: query", query)
    _check_features("prototypical_logits: protos", protos)
    return (F.normalize(query, dim=1) @ F.normalize(protos, dim=1).T) / temperature


# -- Proto-Triplet ----------------------------------------------------------------------------------------------------


def proto_triplet_loss(query: torch.Tensor, query_labels: torch.Tensor, protos: torch.Tensor,
                       margin: float = 0.5) -> torch.Tensor:
    """Proto-Triplet loss of SuSana Distancia (official ``proto_triplet_loss``, FSL-Loss ``icnn_loss.py``).

    ``L = mean_q max(0, d(q, c_{y_q}) - min_{k != y_q} d(q, c_k) + margin)`` with
    ``d(a, b) = sqrt(||a - b||^2 + 1e-6)``: a triplet loss whose anchor is each query, positive its own class
    prototype and negative the nearest wrong-class prototype (the hardest negative). Row ``k`` of ``protos`` is
    class ``k``. The margin 0.5 is the official default (whether the paper tuned it is unknown).
    """
    _check_features("proto_triplet_loss: query", query)
    _check_features("proto_triplet_loss: protos", protos)
    _check_labels("proto_triplet_loss: query_labels", query_labels, query.shape[0])
    n_way = protos.shape[0]
    if n_way < 2:
        raise ValueError(f"proto_triplet_loss needs at least 2 prototypes (a negative), got {n_way}")
    if query_labels.numel() and (int(query_labels.min()) < 0 or int(query_labels.max()) >= n_way):
        raise ValueError(f"proto_triplet_loss: query_labels must lie in 0..{n_way - 1}")
    dist = euclidean_distance(query, protos)
    own = F.one_hot(query_labels.long(), n_way).bool()
    positive = dist[own]
    negative = dist.masked_fill(own, float("inf")).min(1).values
    return F.relu(positive - negative + margin).mean()


# -- ICNN score ------------------------------------------------------------------------------------------------------


class ICNNScore(NamedTuple):
    """The modified ICNN score and its parts: ``score = ((lambda_sc + lambda_dc) / 2 + gamma) / 2``."""

    score: torch.Tensor
    lambda_sc: torch.Tensor  # same-class compactness, in [0, 1]
    lambda_dc: torch.Tensor  # different-class separation, in (0, 1]
    gamma: torch.Tensor  # neighbour purity, in [0, 1], no gradient
    k: int  # neighbours used after clamping
    ipc: int  # neighbours read per point (the pool the nearest different-class distance is taken from)


def icnn_score(features: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
               target_labels: torch.Tensor | None = None, k: int = 4, ipc: int | None = None,
               drop_first_neighbour: bool | None = None, official_drop_first: bool = False) -> ICNNScore:
    """Modified ICNN score of SuSana Distancia: official ``modified_score`` (FSL-Loss ``algorithms/icnn_loss.py``).

    Every scored point ``x_i`` (``features``, ``labels``) reads its ``ipc`` nearest target points (``targets``,
    ``target_labels``; by default the scored points themselves, minus ``x_i``), with
    ``d = sqrt(||x_i - t||^2 + 1e-6)`` and ``s_im = 1`` when the m-th neighbour has ``x_i``'s class. Then

    * ``delta_i`` = distance to the nearest different-class neighbour among the ``ipc`` (infinite if none);
    * same-class term, on the first ``k`` neighbours: ``d~ = d / (delta_i + 1e-7)`` (0 when ``delta_i`` is
      infinite), ``d^ = d~ / max(1, max_m d~)``, ``lambda_sc = 1 - mean_{i in I_s} [sum_m s d^ / sum_m s]``
      over the points with at least one same-class neighbour among the ``k``;
    * different-class term: ``d_bar = (1 - s) d / max_{i, m} (1 - s) d`` (one global maximum),
      ``lambda_dc = mean_{i in I_d} [sum_m d_bar / sum_m (1 - s)]`` over the points with at least one
      different-class neighbour among the ``k``;
    * neighbour purity ``gamma = mean_i (1/k) sum_m s_im`` (no gradient);
    * ``score = ((lambda_sc + lambda_dc) / 2 + gamma) / 2`` in (0, 1]; the loss is ``-log(score)``.

    The official denominators carry ``+ 1e-7`` (``sum_m s + 1e-7``, ``|I_s| + 1e-7``, ...), kept here: the means
    above are exact to a relative 1e-7. (The official integer counts plus ``1e-7``, and its ``gamma``, are
    silently computed in float32 whatever the feature dtype; here everything stays in the feature dtype. With
    that promotion removed, a float64 transcription of the official function agrees with this one to 1e-15 in
    value and gradient.)

    Faithful to the official code, including its edge cases:

    * ``k`` is clamped to ``|T| - 2`` when ``k + 2 >= |T|``, and then ``gamma = 1`` exactly (the official test is
      ``k + 2 < |T|`` on the clamped k). Fewer than 3 targets leave no neighbour to read: ``ValueError``.
    * ``ipc`` defaults to ``k + 1`` (clamped k); the official ``fullicnn`` passes ``shot + query``, which
      guarantees that every point sees at least one different-class neighbour.
    * No same-class neighbour for any point (e.g. 1-shot support-only): ``lambda_sc = 1 - 0 / 1e-7 = 1``.
      Note ``gamma`` is then 0 only when no clamping happens (``n_way >= k + 3``, e.g. the official train_way 30);
      with 5-way 1-shot support and k = 4, k is clamped to 3 and ``gamma = 1`` (the spec's "gamma = 0" holds
      only for the unclamped case).
    * No different-class neighbour for any point among the ``k``: ``lambda_dc = 1`` (the official
      ``dcop = -1`` then ``abs`` trick), constant, so no gradient from that term.

    Which neighbour is dropped (the one fix to the official code):

    * The official code always takes the ``ipc + 1`` nearest targets and drops the first, assuming it is the
      point itself. That is right when the targets are the scored points, but with another target set (the
      official ``queryicnn``: queries against the support or the prototypes) it drops the nearest *real*
      neighbour; with ``query_protos`` the dropped one is usually the query's own prototype.
    * ``drop_first_neighbour=None`` (default, correct): when ``targets`` is None each point is excluded from its
      own neighbours by index (robust to duplicate points, where "the nearest" is ambiguous); when ``targets``
      is given, no neighbour is dropped.
    * ``drop_first_neighbour=True`` or ``official_drop_first=True``: the official rule, for any targets (use it
      to reproduce the original numbers, or when ``targets`` is a copy of ``features`` in the same order).
      With ``targets`` None this equals the default except on exact ties.
    * ``drop_first_neighbour=False``: keep every neighbour (with ``targets`` None, each point counts itself).
    """
    _check_features("icnn_score: features", features)
    _check_labels("icnn_score: labels", labels, features.shape[0])
    self_targets = targets is None
    if self_targets:
        if target_labels is not None:
            raise ValueError("icnn_score: target_labels given without targets")
        targets, target_labels = features, labels
    else:
        _check_features("icnn_score: targets", targets)
        if target_labels is None:
            raise ValueError("icnn_score: targets given without target_labels")
        _check_labels("icnn_score: target_labels", target_labels, targets.shape[0])
        if targets.shape[1] != features.shape[1]:
            raise ValueError(f"icnn_score: features have dim {features.shape[1]} but targets have "
                             f"dim {targets.shape[1]}")
    if official_drop_first and drop_first_neighbour is False:
        raise ValueError("icnn_score: official_drop_first=True contradicts drop_first_neighbour=False")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"icnn_score: k must be a positive int, got {k!r}")

    n_targets = targets.shape[0]
    clamped = k + 2 >= n_targets
    if clamped:
        k = n_targets - 2
    if k < 1:
        raise ValueError(f"icnn_score needs at least 3 target points (k is clamped to |T| - 2), got {n_targets}")
    ipc = k + 1 if ipc is None else ipc
    if not isinstance(ipc, int) or ipc < k:
        raise ValueError(f"icnn_score: ipc must be an int >= k (= {k} after clamping), got {ipc!r}")

    if official_drop_first or drop_first_neighbour:
        mode = "first"
    elif drop_first_neighbour is None and self_targets:
        mode = "self"
    else:
        mode = "none"
    needed = ipc if mode == "none" else ipc + 1
    if needed > n_targets:
        raise ValueError(f"icnn_score: ipc={ipc} neighbours{' plus the dropped one' if mode != 'none' else ''} "
                         f"need {needed} target points, got {n_targets}")

    dist = euclidean_distance(features, targets)
    if mode == "self":
        eye = torch.eye(n_targets, dtype=torch.bool, device=dist.device)
        d, idx = dist.masked_fill(eye, float("inf")).topk(ipc, dim=1, largest=False)
    elif mode == "first":
        d, idx = dist.topk(ipc + 1, dim=1, largest=False)
        d, idx = d[:, 1:], idx[:, 1:]
    else:
        d, idx = dist.topk(ipc, dim=1, largest=False)

    same = labels.unsqueeze(1) == target_labels[idx]  # [n, ipc]
    has_dc = (~same).any(1)
    # Nearest different-class neighbour; rows without one get a placeholder and are zeroed below (the official
    # d / inf = 0), without an inf ever entering the graph.
    delta = d.masked_fill(same, float("inf")).min(1).values
    delta = torch.where(has_dc, delta, torch.ones_like(delta))

    d_k = d[:, :k]
    s_k = same[:, :k].to(d.dtype)
    dc_k = 1.0 - s_k

    nd = d_k / (delta.unsqueeze(1) + ICNN_EPS)
    nd = torch.where(has_dc.unsqueeze(1), nd, torch.zeros_like(nd))
    nd = nd / nd.max(1, keepdim=True).values.clamp_min(1.0)
    sc_counts = s_k.sum(1)
    sc_mean = (nd * s_k).sum(1) / (sc_counts + ICNN_EPS)
    lambda_sc = 1.0 - sc_mean.sum() / ((sc_counts > 0).sum().to(d.dtype) + ICNN_EPS)

    dcd = d_k * dc_k
    dcd = dcd / (dcd.max() + ICNN_EPS)
    dc_counts = dc_k.sum(1)
    lambda_dc = (dcd.sum(1) / (dc_counts + ICNN_EPS)).sum() / ((dc_counts > 0).sum().to(d.dtype) + ICNN_EPS)
    lambda_dc = torch.where(dc_counts.sum() > 0, lambda_dc, torch.ones_like(lambda_dc))

    if clamped:
        gamma = torch.ones((), dtype=d.dtype, device=d.device)
    else:
        gamma = (s_k.sum(1) / k).sum() / features.shape[0]
    score = ((lambda_sc + lambda_dc) / 2 + gamma) / 2
    return ICNNScore(score, lambda_sc, lambda_dc, gamma, k, ipc)


def icnn_loss(features: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
              target_labels: torch.Tensor | None = None, k: int = 4, ipc: int | None = None,
              drop_first_neighbour: bool | None = None, official_drop_first: bool = False) -> torch.Tensor:
    """ICNN loss ``-log(icnn_score(...).score)`` (official ``get_icnn_loss``); arguments as ``icnn_score``.

    The score is positive whenever it is defined (``lambda_dc > 0`` because every distance is at least
    ``sqrt(1e-6)``), so the loss is finite; it is 0 for perfectly separated classes.
    """
    return -torch.log(icnn_score(features, labels, targets, target_labels, k, ipc,
                                 drop_first_neighbour, official_drop_first).score)


# -- term selection and combination --------------------------------------------------------------------------------


def validate_loss_terms(names: str | Sequence[str]) -> list[str]:
    """Check a term selection and return it as a list; ``"cross,fullicnn"`` (the official syntax) also works.

    Unlike the official substring match (``'fullicnn' in args.losses``), an unknown or misspelt name raises. The
    miniImageNet ResNet-12 scripts (``maumruiz/FewShot-KidneyStones``, ``pro-fewshot/scripts/loss-31-32.sh``)
    spell it ``fullicn``: the ICNN term was silently skipped but still counted in the divisor, so tag 31
    (``prototriplet,fullicn``) trained on Proto-Triplet / 2 and tag 32 on (CE + Proto-Triplet) / 3. Duplicates
    and an empty selection raise too.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise ValueError(f"loss terms: select at least one of {list(LOSS_TERMS)}")
    unknown = [n for n in names if n not in LOSS_TERMS]
    if unknown:
        raise ValueError(f"loss terms: unknown name(s) {unknown}; valid names are {list(LOSS_TERMS)}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"loss terms: {duplicated} selected more than once")
    return names


def combine_loss_terms(terms: Mapping[str, torch.Tensor], selected: str | Sequence[str]) -> torch.Tensor:
    """Equal-weight average of the selected scalar terms: ``L = (1/|S|) sum_{l in S} L_l`` (official
    ``get_icnn_loss``, after commit "avg the loss"). ``terms`` may hold more terms than selected (e.g. for logging).
    """
    selected = validate_loss_terms(selected)
    bad_keys = [n for n in terms if n not in LOSS_TERMS]
    if bad_keys:
        raise ValueError(f"combine_loss_terms: unknown term(s) {bad_keys} in terms; valid names are {list(LOSS_TERMS)}")
    missing = [n for n in selected if n not in terms]
    if missing:
        raise ValueError(f"combine_loss_terms: selected term(s) {missing} were not computed (have {list(terms)})")
    for n in selected:
        if not isinstance(terms[n], torch.Tensor) or terms[n].ndim != 0:
            raise ValueError(f"combine_loss_terms: term {n!r} must be a scalar tensor")
    return sum(terms[n] for n in selected) / len(selected)


def episode_loss_terms(support_f: torch.Tensor, support_y: torch.Tensor, query_f: torch.Tensor,
                       query_y: torch.Tensor, n_way: int, terms: str | Sequence[str], margin: float = 0.5,
                       k: int = 4, *, query_protos: bool = False, official_drop_first: bool = False,
                       logits: torch.Tensor | None = None, distance: str = "euclidean",
                       temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """Exactly the selected loss terms of one episode, from its embeddings (official ``get_icnn_loss``).

    Args:
        support_f, support_y: support embeddings ``[S, d]`` and labels ``0..n_way-1`` (any order).
        query_f, query_y: query embeddings ``[Q, d]`` and labels.
        terms: names from ``LOSS_TERMS`` (list or ``"a,b"``); combine them with ``combine_loss_terms``.
        margin: Proto-Triplet margin (official 0.5).
        k: ICNN neighbours (official 4).
        query_protos: ``queryicnn`` scores the queries against the prototypes instead of the support
            (official ``--query_protos``, tags 5 and 6).
        official_drop_first: reproduce the official drop-first-neighbour rule in every ICNN term (it only
            changes ``queryicnn``; see ``icnn_score``).
        logits: the model's query logits for ``cross``; by default ``prototypical_logits(query, prototypes,
            distance, temperature)``, the official ProtoNet.

    ``fullicnn`` uses ``ipc`` = the largest per-class count in support + query, which is the official
    ``shot + query`` on balanced episodes (raised to ``k`` when smaller; the official runs, with 15 queries,
    never reach that case). The prototypes are not detached, so every term except ``suppicnn``
    trains both the support and the query embeddings.
    """
    names = validate_loss_terms(terms)
    _check_features("episode_loss_terms: support_f", support_f)
    _check_features("episode_loss_terms: query_f", query_f)
    _check_labels("episode_loss_terms: support_y", support_y, support_f.shape[0])
    _check_labels("episode_loss_terms: query_y", query_y, query_f.shape[0])
    if support_f.shape[1] != query_f.shape[1]:
        raise ValueError(f"episode_loss_terms: support dim {support_f.shape[1]} != query dim {query_f.shape[1]}")
    if query_protos and "queryicnn" not in names:
        raise ValueError("episode_loss_terms: query_protos=True only applies to the 'queryicnn' term, "
                         f"which is not selected ({names})")
    drop = True if official_drop_first else None

    out: dict[str, torch.Tensor] = {}
    protos = prototypes(support_f, support_y, n_way)
    if "cross" in names:
        if logits is None:
            logits = prototypical_logits(query_f, protos, distance, temperature)
        out["cross"] = F.cross_entropy(logits, query_y.long())
    if "suppicnn" in names:
        out["suppicnn"] = icnn_loss(support_f, support_y, k=k, drop_first_neighbour=drop)
    if "queryicnn" in names:
        if query_protos:
            proto_y = torch.arange(n_way, device=protos.device)
            out["queryicnn"] = icnn_loss(query_f, query_y, protos, proto_y, k=k, drop_first_neighbour=drop)
        else:
            out["queryicnn"] = icnn_loss(query_f, query_y, support_f, support_y, k=k, drop_first_neighbour=drop)
    if "fullicnn" in names:
        all_f = torch.cat([support_f, query_f])
        all_y = torch.cat([support_y.long(), query_y.long()])
        # k after the clamp of icnn_score; ipc below k (shot + query < k, never the official 15 queries) would
        # read fewer neighbours than k, so it is raised to k.
        k_full = len(all_y) - 2 if k + 2 >= len(all_y) else k
        ipc = max(int(torch.bincount(all_y).max()), k_full)
        out["fullicnn"] = icnn_loss(all_f, all_y, k=k, ipc=ipc, drop_first_neighbour=drop)
    if "prototriplet" in names:
        out["prototriplet"] = proto_triplet_loss(query_f, query_y, protos, margin)
    return out
