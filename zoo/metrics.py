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


def paired_difference_ci95(a: torch.Tensor | list[float], b: torch.Tensor | list[float]) -> tuple[float, float]:
    """Mean of ``a - b`` and its 95% half-width, for two methods scored on the *same* episodes.

    Pairing removes the between-episode variance both methods share, so the interval on a difference is far
    narrower (and more honest) than subtracting two independent intervals.
    """
    a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a_t.shape != b_t.shape:
        raise ValueError(f"paired_difference_ci95: shapes differ, {tuple(a_t.shape)} vs {tuple(b_t.shape)}")
    return mean_ci95(a_t - b_t)
