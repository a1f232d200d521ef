"""Reinforcement-learning maths as pure functions on tensors (no module state, any device, any float dtype).

What is here, and where each piece comes from:

* ``discounted_returns``: ``R_t = r_t + gamma R_{t+1}`` (the return of Sutton & Barto, eq. 3.8).
* ``gae``: generalised advantage estimation (Schulman et al., ICLR 2016, eq. 11 and 16).
* ``ppo_clip_loss`` / ``ppo_value_loss``: PPO's clipped surrogate (Schulman et al. 2017, eq. 7) and the clipped
  value loss of the PPO reference implementation (OpenAI baselines ``ppo2``).
* ``normalise_advantages``: zero-mean, unit-std advantages per minibatch (baselines ``ppo2``, NAP's official code).
* ``reinforce_loss`` / ``update_baseline``: REINFORCE (Williams 1992, eq. 11's ``(r - b) d log pi``) with a
  moving-average baseline and an entropy bonus; the baseline update is its own pure function.
* ``epsilon_greedy``: a sample from a categorical mixed with the uniform distribution, drawn from an explicit
  ``torch.Generator``, with its log-probability under the mixture (what a policy gradient needs).

Users: :mod:`zoo.methods.nap` (GAE, PPO) and, later, Meta-RTL (REINFORCE, epsilon-greedy). Tests: ``tests/test_rl.py``,
against values computed by hand.
"""

from __future__ import annotations

import torch


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}")


def discounted_returns(rewards: torch.Tensor, gamma: float, last_value: torch.Tensor | None = None) -> torch.Tensor:
    """Returns-to-go ``R_t = r_t + gamma R_{t+1}`` along the last dimension (time).

    Episodes are complete unless ``last_value`` (``[...]``, the value of the state after the last step) is given:
    then it bootstraps ``R_T``; otherwise ``R_T = 0``.

    Args:
        rewards: ``[..., T]``.
        gamma: discount in ``[0, 1]``.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0]) if last_value is None else last_value.to(rewards.dtype)
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float,
        last_value: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 11), computed by its recursion (eq. 16).

    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)`` and ``A_t = delta_t + gamma lambda A_{t+1}``. Episodes are
    complete: the step after the last is terminal, so ``V(s_T) = 0`` unless ``last_value`` is given. The
    lambda-return ``R_t = A_t + V(s_t)`` is the value target (``add_tdlamret_and_adv`` in NAP's official code).

    Args:
        rewards, values: ``[..., T]``, time last.
    Returns:
        ``(advantages, returns)``, both ``[..., T]``.
    """
    _check_same_shape(rewards=rewards, values=values)
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must be in [0, 1], got {gamma}, {lam}")
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[..., 0]) if last_value is None else last_value.to(rewards.dtype)
    next_adv = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        next_adv = delta + gamma * lam * next_adv
        adv[..., t] = next_adv
        next_value = values[..., t]
    return adv, adv + values


def ppo_clip_loss(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, epsilon: float) -> torch.Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), negated to a loss to minimise.

    ``-mean min(rho A, clip(rho, 1 - eps, 1 + eps) A)`` with ``rho = exp(logp - logp_old)``; ``logp_old`` and
    ``adv`` are constants of the rollout (detach them if they carry a graph).
    """
    _check_same_shape(logp=logp, logp_old=logp_old, adv=adv)
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    ratio = torch.exp(logp - logp_old)
    return -torch.min(ratio * adv, ratio.clamp(1 - epsilon, 1 + epsilon) * adv).mean()


def ppo_value_loss(value: torch.Tensor, returns: torch.Tensor, value_old: torch.Tensor | None = None,
                   clip: float | None = None) -> torch.Tensor:
    """Value loss ``mean (V - R)^2``, optionally clipped around the rollout's values as PPO's reference code does.

    With ``clip`` (and ``value_old``): ``mean max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``, so one
    update cannot move the value far from the value the advantages were computed with (baselines ``ppo2``).
    [INTERP] No factor 1/2: NAP's official loss is the plain mean squared error, and a factor is only a
    rescaling of ``value_coeff``. ``clip=None`` (NAP's choice) is the unclipped loss.
    """
    _check_same_shape(value=value, returns=returns)
    plain = (value - returns) ** 2
    if clip is None:
        return plain.mean()
    if value_old is None:
        raise ValueError("ppo_value_loss: clip needs value_old, the values recorded during the rollout")
    if clip < 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    clipped = (value_old + (value - value_old).clamp(-clip, clip) - returns) ** 2
    return torch.max(plain, clipped).mean()


def normalise_advantages(adv: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit (population) std over all entries; returned unchanged when the std is 0 or NaN.

    Leaving a constant batch alone (rather than dividing by an epsilon) is what NAP's official code does: a
    minibatch of equal advantages carries no preference between actions either way.
    """
    std = adv.std(unbiased=False) if adv.numel() > 1 else adv.new_tensor(0.0)
    if std == 0 or torch.isnan(std):
        return adv
    return (adv - adv.mean()) / std


def reinforce_loss(logp: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor | float = 0.0,
                   entropy: torch.Tensor | None = None, entropy_coeff: float = 0.0) -> torch.Tensor:
    """REINFORCE with a baseline and an entropy bonus (Williams 1992), as a loss to minimise.

    ``-mean((r - b) log pi(a)) - entropy_coeff * mean(H)``. Its gradient is the REINFORCE estimator
    ``-(r - b) grad log pi(a)`` (eq. 11 of the paper: ``Delta w = alpha (r - b) e``, ``e`` the characteristic
    eligibility ``d ln g / d w``); the baseline is a constant (detached), so it changes the variance only.

    Args:
        logp: ``[...]`` log-probabilities of the actions taken (with a graph to the policy).
        rewards: ``[...]`` the rewards (or returns) those actions earned.
        baseline: scalar or broadcastable, e.g. from :func:`update_baseline`.
        entropy: ``[...]`` policy entropies at the same states, needed when ``entropy_coeff != 0``.
    """
    _check_same_shape(logp=logp, rewards=rewards)
    if entropy_coeff != 0 and entropy is None:
        raise ValueError("reinforce_loss: entropy_coeff is set but no entropy was given")
    advantage = (rewards - torch.as_tensor(baseline, dtype=rewards.dtype, device=rewards.device)).detach()
    loss = -(advantage * logp).mean()
    if entropy is not None and entropy_coeff != 0:
        loss = loss - entropy_coeff * entropy.mean()
    return loss


def update_baseline(baseline: torch.Tensor | float, rewards: torch.Tensor, decay: float) -> torch.Tensor:
    """The moving-average baseline after one batch: ``decay * b + (1 - decay) * mean(r)`` (a new tensor).

    [INTERP] The first batch is not special-cased: start from ``baseline=0`` (or from the first batch's mean
    reward, if you want no warm-up bias) — the caller decides, this function only states the update.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    b = torch.as_tensor(baseline, dtype=rewards.dtype, device=rewards.device)
    return decay * b + (1.0 - decay) * rewards.detach().mean()


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum p log p`` over the last dimension; masked (``-inf``) logits contribute 0, not NaN."""
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    return -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)


def epsilon_greedy(logits: torch.Tensor, epsilon: float, generator: torch.Generator,
                   greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from ``(1 - eps) * pi + eps * uniform`` over the last dimension; returns ``(sample, log_prob)``.

    With probability ``eps`` the action is uniform over the ``K`` choices, otherwise it is drawn from
    ``pi = softmax(logits)``, or, with ``greedy=True``, is its argmax (classic epsilon-greedy). The log-probability
    is that of the mixture the action was really drawn from, ``log((1 - eps) pi(a) + eps / K)`` (``pi`` one-hot at
    the argmax when greedy), so importance ratios and policy gradients stay correct under exploration.
    [INTERP] Sampling from ``pi`` in the exploit branch (the default) keeps the policy's own stochasticity, as a
    REINFORCE policy needs; ``greedy=True`` is the textbook rule for value-based agents.

    Random draws come only from ``generator`` (three draws per call whatever ``eps`` is), so a sample is a pure
    function of the generator's state.

    Args:
        logits: ``[..., K]`` unnormalised policy scores (on CPU or the generator's device).
        epsilon: exploration probability in ``[0, 1]``.
    Returns:
        ``sample`` ``[...]`` (long) and ``log_prob`` ``[...]`` (differentiable in ``logits`` unless greedy).
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    k = logits.shape[-1]
    batch_shape = logits.shape[:-1]
    flat = logits.reshape(-1, k)
    probs = torch.softmax(flat, -1)
    if greedy:
        exploit = flat.argmax(-1)
        policy = torch.nn.functional.one_hot(exploit, k).to(probs.dtype)
    else:
        exploit = torch.multinomial(probs.detach(), 1, generator=generator).squeeze(-1)
        policy = probs
    explore_action = torch.randint(k, (flat.shape[0],), generator=generator, device=flat.device)
    explore = torch.rand(flat.shape[0], generator=generator, device=flat.device) < epsilon
    sample = torch.where(explore, explore_action, exploit)
    mixed = (1.0 - epsilon) * policy + epsilon / k
    log_prob = torch.log(mixed.gather(-1, sample[:, None]).squeeze(-1))
    return sample.reshape(batch_shape), log_prob.reshape(batch_shape)
