"""Tests of zoo.training.rl against values computed by hand (the arithmetic is written beside each assertion), plus the
direction in which each loss's gradient moves the policy."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.training.rl import (
    categorical_entropy,
    discounted_returns,
    epsilon_greedy,
    gae,
    normalise_advantages,
    ppo_clip_loss,
    ppo_value_loss,
    reinforce_loss,
    update_baseline,
)


def test_discounted_returns_by_hand():
    r = torch.tensor([[1.0, 0.0, 2.0]])
    # R2 = 2 ; R1 = 0 + .5 * 2 = 1 ; R0 = 1 + .5 * 1 = 1.5
    assert torch.allclose(discounted_returns(r, 0.5), torch.tensor([[1.5, 1.0, 2.0]]))
    # bootstrapped from V(s_3) = 4: R2 = 2 + .5 * 4 = 4 ; R1 = 0 + .5 * 4 = 2 ; R0 = 1 + .5 * 2 = 2
    assert torch.allclose(discounted_returns(r, 0.5, last_value=torch.tensor([4.0])), torch.tensor([[2.0, 2.0, 4.0]]))
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(r, 1.5)


def test_gae_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 0.0]])
    adv, ret = gae(rewards, values, gamma=0.5, lam=0.5)
    # t=2: delta = 2 + .5*0 - 0 = 2 ; A2 = 2
    # t=1: delta = 0 + .5*0 - 1 = -1 ; A1 = -1 + .25*2 = -.5
    # t=0: delta = 1 + .5*1 - .5 = 1 ; A0 = 1 + .25*(-.5) = .875 ; returns = A + V
    assert torch.allclose(adv, torch.tensor([[0.875, -0.5, 2.0]]))
    assert torch.allclose(ret, torch.tensor([[1.375, 0.5, 2.0]]))
    # lambda = 1: advantages are discounted returns minus values (eq. 18 of the paper)
    adv1, _ = gae(rewards, values, gamma=0.5, lam=1.0)
    assert torch.allclose(adv1, discounted_returns(rewards, 0.5) - values)
    # lambda = 0: the one-step TD residual: [1 + .5*1 - .5, 0 + .5*0 - 1, 2 - 0]
    adv0, _ = gae(rewards, values, gamma=0.5, lam=0.0)
    assert torch.allclose(adv0, torch.tensor([[1.0, -1.0, 2.0]]))
    # a bootstrapped last value: delta = 1 + .5*2 - .5 = 1.5
    adv_b, _ = gae(torch.tensor([1.0]), torch.tensor([0.5]), 0.5, 0.5, last_value=torch.tensor(2.0))
    assert torch.allclose(adv_b, torch.tensor([1.5]))
    with pytest.raises(ValueError, match="shapes differ"):
        gae(rewards, values[:, :2], 0.5, 0.5)


def test_ppo_clip_loss_by_hand_and_gradient_direction():
    logp_old = torch.log(torch.tensor([0.5, 0.5]))
    logp = torch.log(torch.tensor([0.75, 0.75]))  # ratio 1.5
    # A = +1: min(1.5, clip(1.5) = 1.2) = 1.2 ; A = -1: min(-1.5, -1.2) = -1.5 ; loss = -(1.2 - 1.5) / 2
    loss = ppo_clip_loss(logp, logp_old, torch.tensor([1.0, -1.0]), epsilon=0.2)
    assert math.isclose(float(loss), 0.15, rel_tol=1e-6)

    def grad(ratio: float, a: float) -> float:
        lp = torch.tensor([math.log(0.5 * ratio)], requires_grad=True)
        ppo_clip_loss(lp, torch.log(torch.tensor([0.5])), torch.tensor([a]), 0.2).backward()
        return float(lp.grad)

    assert grad(1.0, 1.0) < 0  # inside the clip range, descent raises the log-prob of a good action
    assert grad(1.0, -1.0) > 0  # ... and lowers that of a bad one
    assert grad(1.5, 1.0) == 0.0  # a good action already 1.5x more likely: clipped, no further push
    assert math.isclose(grad(1.5, -1.0), 1.5, rel_tol=1e-6)  # a bad one keeps its full gradient, -A * ratio


def test_ppo_value_loss_by_hand():
    value, returns = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])
    # plain: ((1-2)^2 + (3-2)^2) / 2 = 1
    assert math.isclose(float(ppo_value_loss(value, returns)), 1.0)
    # clipped around V_old = [0, 2] by 0.5: [0.5, 2.5] -> squared errors [2.25, 0.25]; max with [1, 1] -> [2.25, 1]
    loss = ppo_value_loss(value, returns, value_old=torch.tensor([0.0, 2.0]), clip=0.5)
    assert math.isclose(float(loss), (2.25 + 1.0) / 2)
    with pytest.raises(ValueError, match="value_old"):
        ppo_value_loss(value, returns, clip=0.5)


def test_normalise_advantages_by_hand():
    adv = normalise_advantages(torch.tensor([1.0, 2.0, 3.0]))
    # mean 2, population std sqrt(((-1)^2 + 0 + 1^2) / 3) = sqrt(2/3)
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3))
    same = torch.tensor([2.0, 2.0])
    assert torch.equal(normalise_advantages(same), same)  # std 0: left alone
    assert torch.equal(normalise_advantages(torch.tensor([5.0])), torch.tensor([5.0]))


def test_reinforce_loss_and_baseline_by_hand():
    logp = torch.log(torch.tensor([0.5, 0.25]))
    rewards = torch.tensor([3.0, 1.0])
    # advantages r - b = [1, -1]: loss = -(1 * log .5 + (-1) * log .25) / 2 = -(log 2) / 2
    assert math.isclose(float(reinforce_loss(logp, rewards, baseline=2.0)), -math.log(2) / 2, rel_tol=1e-6)
    # entropy bonus 0.1 * mean([1, .5]) = .075 is subtracted
    loss = reinforce_loss(logp, rewards, 2.0, entropy=torch.tensor([1.0, 0.5]), entropy_coeff=0.1)
    assert math.isclose(float(loss), -math.log(2) / 2 - 0.075, rel_tol=1e-6)
    with pytest.raises(ValueError, match="entropy"):
        reinforce_loss(logp, rewards, entropy_coeff=0.1)
    # b' = .9 * 1 + .1 * mean([2, 4]) = 1.2, a new tensor; the input baseline is untouched
    b = torch.tensor(1.0)
    assert math.isclose(float(update_baseline(b, torch.tensor([2.0, 4.0]), 0.9)), 1.2, rel_tol=1e-6)
    assert float(b) == 1.0


def test_reinforce_gradient_favours_actions_above_the_baseline():
    logits = torch.zeros(2, requires_grad=True)
    logp = torch.log_softmax(logits, -1)
    # action 0 earned 3, action 1 earned 1, baseline 2: descent must raise logit 0 and lower logit 1
    reinforce_loss(logp, torch.tensor([3.0, 1.0]), baseline=2.0).backward()
    assert logits.grad[0] < 0 < logits.grad[1]
    # with no reward signal the entropy bonus alone pushes a peaked policy towards uniform
    peaked = torch.tensor([2.0, 0.0], requires_grad=True)
    lp = torch.log_softmax(peaked, -1)
    reinforce_loss(lp, torch.zeros(2), 0.0, categorical_entropy(peaked).expand(2), entropy_coeff=1.0).backward()
    assert peaked.grad[0] > 0 > peaked.grad[1]


def test_categorical_entropy_by_hand():
    assert math.isclose(float(categorical_entropy(torch.zeros(2))), math.log(2), rel_tol=1e-6)
    assert float(categorical_entropy(torch.tensor([0.0, float("-inf")]))) == 0.0  # no NaN from 0 * log 0


def test_epsilon_greedy_log_prob_is_that_of_the_mixture():
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25])).expand(20000, 3)
    g = torch.Generator().manual_seed(0)
    sample, logp = epsilon_greedy(logits, 0.3, g)
    # mixture: .7 * [.5, .25, .25] + .3 / 3 = [.45, .275, .275]
    mixed = torch.tensor([0.45, 0.275, 0.275])
    assert torch.allclose(logp, mixed.log()[sample])
    freq = torch.bincount(sample, minlength=3).float() / sample.numel()
    assert torch.allclose(freq, mixed, atol=0.015)  # binomial std of a frequency here is at most 0.0035
    # the same generator state gives the same samples
    again, _ = epsilon_greedy(logits, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(sample, again)


def test_epsilon_greedy_greedy_and_limits():
    logits = torch.tensor([[0.0, 2.0, 1.0]], requires_grad=True)
    a, lp = epsilon_greedy(logits, 0.0, torch.Generator().manual_seed(1), greedy=True)
    assert int(a) == 1 and float(lp) == 0.0  # eps 0, greedy: the argmax with probability 1
    # greedy with eps .3: argmax has .7 + .1 = .8, the others .1 each
    a, lp = epsilon_greedy(logits.detach().expand(4000, 3), 0.3, torch.Generator().manual_seed(2), greedy=True)
    assert torch.allclose(lp, torch.where(a == 1, torch.tensor(0.8), torch.tensor(0.1)).log())
    _, lp = epsilon_greedy(logits, 1.0, torch.Generator().manual_seed(3))
    assert math.isclose(float(lp.detach()), math.log(1 / 3), rel_tol=1e-6)  # eps 1: uniform
    # the log-probability is differentiable in the logits (a policy gradient can flow through it)
    _, lp = epsilon_greedy(logits, 0.2, torch.Generator().manual_seed(4))
    lp.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy(logits, 1.5, torch.Generator())
