"""Inner-loop toolkit on ``torch.func``: k-step adaptation of a dict of parameters, first or second order, of a
chosen subset of them, and Reptile's interpolation.

Everything here is a pure function of a parameter dict ``{name: tensor}`` (the names of ``module.named_parameters()``)
and never modifies a tensor in place: a step returns new tensors, so the module's own parameters stay the
meta-parameters and autograd can differentiate through the steps. Gradients are taken with ``torch.func.grad``,
which composes with ``torch.func.vmap`` (one batched pass over a meta-batch of tasks) and with ordinary autograd
outside it (the meta-gradient is ``loss.backward()`` as usual).

Buffers (BatchNorm running statistics) are never adapted: ``functional_forward`` passes them through
``functional_call`` as given. Modules that *update* buffers in the forward pass (a training-mode BatchNorm that
tracks running statistics) would write into them in place on every inner step, and cannot run under ``vmap``;
``use_batch_statistics`` switches a module's BatchNorm layers to always normalise with the statistics of the batch
they see, which is what MAML's official code does (``tf.contrib.layers.batch_norm`` called in training mode at
meta-test time too: transductive batch statistics, Finn et al. 2017, footnote on batch normalisation). MAML and
ANIL here use it; see ``zoo.methods.maml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.func import functional_call, grad

Params = dict[str, torch.Tensor]
Selector = Callable[[str], bool] | str | Iterable[str] | None


def select(names: Iterable[str], which: Selector) -> list[str]:
    """The names a selector picks: ``None`` -> all; a string -> those starting with that prefix (``"head."`` for
    ANIL, ``"backbone."`` for BOIL / Meta-DMoE); a callable -> those it accepts; an iterable -> exactly those.

    A selector that picks nothing, or names a parameter that does not exist, is an error: a typo must not turn MAML
    into a frozen model silently.
    """
    names = list(names)
    if which is None:
        chosen = names
    elif isinstance(which, str):
        chosen = [n for n in names if n.startswith(which)]
    elif callable(which):
        chosen = [n for n in names if which(n)]
    else:
        wanted = list(which)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"inner loop: no parameter(s) named {unknown}; known: {names}")
        chosen = [n for n in names if n in wanted]
    if not chosen:
        raise ValueError(f"inner loop: the selector {which!r} picks none of the parameters {names}")
    return chosen


def functional_forward(module: nn.Module, params: Mapping[str, torch.Tensor], *args,
                       buffers: Mapping[str, torch.Tensor] | None = None, **kwargs):
    """``module(*args, **kwargs)`` computed with ``params`` (and ``buffers``, if given) in place of its own."""
    return functional_call(module, {**(buffers or {}), **params}, args, kwargs)


def gradient_step(params: Params, grads: Params, lr: float | Mapping[str, torch.Tensor]) -> Params:
    """One step ``theta' = theta - alpha * g`` (Finn et al. 2017, eq. 1) on the parameters named in ``grads``.

    ``lr`` is one number, or a tensor per parameter name (Meta-SGD's learned step sizes, Li et al. 2017).
    Parameters without a gradient are returned unchanged (the same tensor objects).
    """
    out = dict(params)
    for name, g in grads.items():
        step = lr[name] if isinstance(lr, Mapping) else lr
        out[name] = params[name] - step * g
    return out


def adapt(params: Params, loss_fn: Callable[[Params], torch.Tensor], steps: int,
          lr: float | Mapping[str, torch.Tensor], first_order: bool = False, which: Selector = None) -> Params:
    """``steps`` gradient steps on ``loss_fn`` (the support loss of a task) from ``params``; the adapted dict.

    Second order (default): the returned tensors are differentiable functions of ``params`` through every step,
    so the query loss's gradient is MAML's full meta-gradient (eq. 1 inside the meta-objective). First order
    (``first_order=True``): each inner gradient is detached, so ``d theta'/d theta`` is the identity and the
    meta-gradient is the query-loss gradient at the adapted point (FOMAML, section 5.2 of the paper).
    Only the parameters chosen by ``which`` (see :func:`select`) move; the others are passed to ``loss_fn``
    unchanged. Works inside ``torch.func.vmap`` (one task per vmapped slice) and under ``torch.no_grad``.
    """
    if steps < 0:
        raise ValueError(f"inner loop: steps must be >= 0, got {steps}")
    names = select(params, which)
    fast = {n: params[n] for n in names}
    frozen = {n: t for n, t in params.items() if n not in fast}

    def loss_of(subset: Params) -> torch.Tensor:
        return loss_fn({**frozen, **subset})

    for _ in range(steps):
        grads = grad(loss_of)(fast)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        fast = gradient_step(fast, grads, lr)
    return {**frozen, **fast}


def reptile_interpolate(theta: Mapping[str, torch.Tensor], phi: Mapping[str, torch.Tensor],
                        epsilon: float) -> Params:
    """Reptile's meta-update ``theta + epsilon (phi - theta)`` (Nichol et al. 2018, algorithm 1), for every name
    of ``phi`` (the adapted weights); names only in ``theta`` are returned unchanged. New tensors, nothing in place.
    """
    unknown = [n for n in phi if n not in theta]
    if unknown:
        raise ValueError(f"reptile_interpolate: adapted parameter(s) {unknown} are not in theta")
    return {n: (t + epsilon * (phi[n] - t) if n in phi else t) for n, t in theta.items()}


class BatchStatisticsNorm(nn.Module):
    """Batch normalisation with the current batch's statistics only (no running statistics), in plain tensor ops.

    Replaces ``nn.BatchNorm{1,2,3}d`` in :func:`use_batch_statistics`. Written out rather than calling
    ``F.batch_norm(training=True)`` because, under ``torch.func.vmap``, the fused kernel's double backward gives
    wrong second-order meta-gradients (torch 2.13: conv bias gradients of 1e-2 where the loop over tasks gives
    1e-7; ``tests/test_maml.py`` compares the two). Parameters keep BatchNorm's names (``weight``, ``bias``).
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.eps = bn.eps
        self.weight, self.bias = bn.weight, bn.bias  # the same Parameters (None when not affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(x.dim()) if d != 1]  # all but the channel dimension
        mean = x.mean(dims, keepdim=True)
        var = (x - mean).pow(2).mean(dims, keepdim=True)  # biased, as BatchNorm normalises
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            shape = [1, -1] + [1] * (x.dim() - 2)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Make every BatchNorm layer of ``module`` normalise with the current batch's statistics, always.

    Each BatchNorm becomes a :class:`BatchStatisticsNorm` holding the same affine parameters (so parameter names
    and state-dict keys of the weights do not change) and no running-statistics buffers: nothing is written in the
    forward pass, which ``vmap`` and a pure inner loop need. This is MAML's official behaviour (batch statistics at
    meta-test time too: transductive over a task's support, then its query set). Returns the module, changed in
    place.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, BatchStatisticsNorm(child))
        else:
            use_batch_statistics(child)
    return module
