"""Evaluation statistics against values computed by hand."""

import math

import pytest

from zoo.metrics import mean_ci95, paired_difference_ci95


def test_mean_ci95_by_hand():
    # values 0.5, 0.7, 0.9: mean 0.7; sample std sqrt(((-.2)^2 + 0 + .2^2) / 2) = 0.2; half-width 1.96 * 0.2 / sqrt(3)
    mean, ci = mean_ci95([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert ci == pytest.approx(1.959963984540054 * 0.2 / math.sqrt(3))


def test_single_value_has_zero_width_and_empty_is_an_error():
    assert mean_ci95([0.25]) == (0.25, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_ci95([])


def test_paired_difference_removes_shared_episode_variance():
    a = [0.9, 0.5, 0.7]
    b = [0.8, 0.4, 0.6]  # b = a - 0.1 on every episode: the difference is certain
    diff, ci = paired_difference_ci95(a, b)
    assert diff == pytest.approx(0.1) and ci == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        paired_difference_ci95([1.0, 2.0], [1.0])
