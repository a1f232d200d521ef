"""Evaluation statistics shared by every system: pure functions, tested against hand-computed values."""

from __future__ import annotations

import math

import torch

Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def mean_ci95(values: torch.Tensor | list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval, ``1.96 * std / sqrt(n)``.

    This is the few-shot protocol of Snell et al. (2017) and the official SuSana Distancia code: ``std`` is the
    sample standard deviation (``n - 1`` denominator) of the per-episode accuracies. One value gives half-width 0
    (nothing to estimate a spread from), not NaN, so tiny debug runs still log a number.
    """
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if x.numel() == 1:
        return float(x[0]), 0.0
    return float(x.mean()), float(Z95 * x.std(unbiased=True) / math.sqrt(x.numel()))


def majority_class_share(pred: torch.Tensor, n_way: int) -> torch.Tensor:
    """Share of an episode's queries predicted as its most frequent predicted class: ``[..., Q]`` labels -> ``[...]``.

    A collapse diagnostic: on balanced episodes a good classifier gives about ``1 / n_way`` (0.2 in 5-way), one
    that puts every query into the same class gives 1, whatever its accuracy happens to be.
    """
    if pred.shape[-1] == 0:
        raise ValueError("majority_class_share: an episode without queries")
    counts = torch.nn.functional.one_hot(pred.long(), n_way).sum(-2)  # [..., n_way]
    return counts.max(-1).values.to(torch.float64) / pred.shape[-1]


def head_collapsed(shares: torch.Tensor | list[float], n_way: int, factor: float = 2.0) -> bool:
    """The collapse check: the mean per-episode majority-class share exceeds ``factor / n_way`` (0.4 in 5-way).

    Balanced 5-way 5-query episodes give about 0.2 for an accurate model and about 0.36 for uniformly random
    guesses; a head that sends most queries to one class lands near 1.
    """
    return float(torch.as_tensor(shares, dtype=torch.float64).mean()) > min(1.0, factor / n_way)


def paired_difference_ci95(a: torch.Tensor | list[float], b: torch.Tensor | list[float]) -> tuple[float, float]:
    """Mean of ``a - b`` and its 95% half-width, for two methods scored on the *same* episodes.

    Pairing removes the between-episode variance both methods share, so the interval on a difference is far
    narrower (and more honest) than subtracting two independent intervals.
    """
    a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a_t.shape != b_t.shape:
        raise ValueError(f"paired_difference_ci95: shapes differ, {tuple(a_t.shape)} vs {tuple(b_t.shape)}")
    return mean_ci95(a_t - b_t)


def seed_paired_difference_ci95(a_by_seed: list, b_by_seed: list) -> tuple[float, float]:
    """Mean paired difference over independent training runs and its 95% half-width, t-distributed over seeds.

    ``a_by_seed[s]`` and ``b_by_seed[s]`` are two methods' per-item scores on the items seed ``s`` shares between
    them (its fixed test episodes). Each seed contributes one number, ``mean(a_s - b_s)``; the interval is
    ``t_{0.975, S-1} * std / sqrt(S)`` over those ``S`` numbers, so run-to-run variance (initialisation, episode
    order) is inside it - pooling the items of a few seeds would leave it out. Needs at least two seeds.
    """
    if len(a_by_seed) != len(b_by_seed):
        raise ValueError(f"seed_paired_difference_ci95: {len(a_by_seed)} seeds for a, {len(b_by_seed)} for b")
    if len(a_by_seed) < 2:
        raise ValueError("seed_paired_difference_ci95 needs at least 2 seeds (an interval over 1 run is undefined)")
    return mean_t_ci95([paired_difference_ci95(a, b)[0] for a, b in zip(a_by_seed, b_by_seed)])


def mean_t_ci95(values: torch.Tensor | list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval, ``t_{0.975, n-1} * std / sqrt(n)``: for a handful of
    independent values (training seeds, the 20 Omniglot runs), where :func:`mean_ci95`'s normal 1.96 is too narrow.
    Needs at least two values."""
    from scipy.stats import t

    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    n = v.numel()
    if n < 2:
        raise ValueError(f"mean_t_ci95 needs at least 2 values, got {n}")
    return float(v.mean()), float(t.ppf(0.975, n - 1) * v.std(unbiased=True) / math.sqrt(n))


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Macro-averaged F1 over the classes present in ``target`` or ``pred`` (iWildCam's WILDS metric).

    Per class ``c``: ``F1 = 2 TP / (2 TP + FP + FN)``; the mean is over classes that occur in either tensor, as
    WILDS' ``F1(average="macro")`` (scikit-learn's ``labels`` = the union of both), so a class absent from a domain
    and never predicted does not count as a zero.
    """
    pred, target = torch.as_tensor(pred).reshape(-1).long(), torch.as_tensor(target).reshape(-1).long()
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"macro_f1: need equal, non-empty shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
    present = torch.unique(torch.cat([pred, target]))
    if bool((present < 0).any()) or bool((present >= num_classes).any()):
        raise ValueError(f"macro_f1: labels must be in 0..{num_classes - 1}")
    scores = []
    for c in present.tolist():
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores))
