"""Evaluation statistics against values computed by hand."""

import math

import pytest

import torch

from zoo.training.metrics import head_collapsed, majority_class_share, mean_ci95, mean_t_ci95, paired_difference_ci95


def test_mean_ci95_by_hand():
    # values 0.5, 0.7, 0.9: mean 0.7; sample std sqrt(((-.2)^2 + 0 + .2^2) / 2) = 0.2; half-width 1.96 * 0.2 / sqrt(3)
    mean, ci = mean_ci95([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert ci == pytest.approx(1.959963984540054 * 0.2 / math.sqrt(3))


def test_mean_t_ci95_by_hand():
    # 1, 2, 3: mean 2, sample std 1, t(0.975, 2) = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    mean, half = mean_t_ci95([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(2.484138, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        mean_t_ci95([1.0])


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


def test_majority_class_share_by_hand():
    # episode 1: predictions 0,0,1,2 -> class 0 twice of 4 = 0.5; episode 2: all class 2 -> 1.0
    pred = torch.tensor([[0, 0, 1, 2], [2, 2, 2, 2]])
    assert majority_class_share(pred, 3).tolist() == [0.5, 1.0]
    assert majority_class_share(torch.tensor([0, 1, 2]), 3).item() == pytest.approx(1 / 3)  # one balanced episode
    with pytest.raises(ValueError, match="without queries"):
        majority_class_share(torch.zeros(2, 0, dtype=torch.long), 3)


def test_collapse_check_threshold_is_twice_uniform():
    assert not head_collapsed([0.2, 0.4], 5)  # mean 0.3 <= 2/5
    assert head_collapsed([0.4, 0.6], 5)  # mean 0.5 > 0.4
    assert not head_collapsed([1.0], 2)  # 2-way: the bound is capped at 1, a share of 1 is not "more than" it
