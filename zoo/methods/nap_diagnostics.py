"""Does a NAP network use its history? Three diagnostics, on held-out tasks, for tests and the benchmark.

A review of our first NAP port found a network that ignored its context: its held-out NLL was the same with 5, 20
or 55 observed points and the acquisition ranking under a task's own history correlated 0.9995 with the ranking
under another task's history, i.e. the policy applied one fixed ranking of ``x``. These functions measure that:

* :func:`context_curves`: for nested random contexts of growing size (the first ``n`` points of one random order
  of the pool), the mean NLL of the bar distribution on the points *not* in the context, and the Spearman rank
  correlation between the predicted mean and the true value on those points. A model that conditions on its
  context has an NLL that falls and a correlation that grows with ``n``.
* :func:`history_swap_correlation`: the Spearman correlation, over a task's candidates, between the acquisition
  scores under the task's own history and under the history (``x`` and ``y``) of another task. A policy that reads
  its history scores candidates differently under a history that says the optimum is elsewhere (clearly below 1);
  a policy that ignores it gives 1.

Everything is evaluated with the network in eval mode and without gradients; the random draws are keyed by
:func:`zoo.methods.nap.key_generator`, so the figures are repeatable.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.methods.nap import bar_mean, bar_nll, bo_features, key_generator


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks ``1..n`` of the entries of the 1-D ``x``, ties sharing their average rank (as ``scipy.stats.rankdata``)."""
    if x.dim() != 1:
        raise ValueError(f"ranks expects a 1-D tensor, got shape {tuple(x.shape)}")
    x = x.double()
    order = torch.argsort(x, stable=True)
    r = torch.empty_like(x)
    r[order] = torch.arange(1, x.numel() + 1, dtype=torch.float64)
    # average the ranks of equal values: each group of ties gets the mean of the positions it occupies
    uniq, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, r)
    counts = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(r))
    return (sums / counts)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D samples: the Pearson correlation of their (average) ranks.

    Returns ``nan`` when either sample is constant (its ranks have no variance).
    """
    if a.shape != b.shape or a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"spearman needs two 1-D samples of the same length >= 2, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.square().sum() * rb.square().sum()).sqrt()
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _features(hist_y: torch.Tensor, n_init: int, budget: int) -> torch.Tensor:
    """``[incumbent, t / T]`` for a history of ``hist_y.shape[1]`` points read as ``n_init`` initial points then
    ``t`` trials of a ``budget``-trial run (the evaluation's convention)."""
    t = min(max(hist_y.shape[1] - n_init, 0), budget)
    return bo_features(hist_y, torch.ones_like(hist_y, dtype=torch.bool), t, budget)


@torch.no_grad()
def context_curves(net: torch.nn.Module, tasks: list[dict[str, torch.Tensor]], context_sizes: list[int],
                   seed: int = 0) -> dict[int, dict[str, list[float]]]:
    """Held-out NLL and Spearman correlation (predicted mean vs truth) per context size, one value per task.

    Args:
        net: a :class:`zoo.methods.nap.NAPNetwork`.
        tasks: tasks as :mod:`datamodules.bo.tasks` makes them (``x`` ``[N, D]``, ``y`` ``[N]`` in ``[0, 1]``);
            every pool needs more than ``max(context_sizes)`` points.
        context_sizes: the ``n`` to measure at; the context of size ``n`` is the first ``n`` points of one random
            order of the task's pool, so the contexts are nested and the comparison across ``n`` is paired.
        seed: keys the random orders.
    Returns:
        ``{n: {"nll": [per task], "spearman": [per task]}}``, both on the pool points outside the largest
        context (the same targets for every ``n``).
    """
    was_training = net.training
    net.eval()
    largest = max(context_sizes)
    out: dict[int, dict[str, list[float]]] = {n: {"nll": [], "spearman": []} for n in context_sizes}
    for i, task in enumerate(tasks):
        x, y = task["x"], task["y"]
        if x.shape[0] <= largest:
            raise ValueError(f"task {i} has {x.shape[0]} candidates; context_curves needs more than {largest}")
        order = torch.randperm(x.shape[0], generator=key_generator(seed, "nap-context-curves", i))
        targets = order[largest:]
        for n in context_sizes:
            ctx = order[:n]
            hy = y[ctx][None]
            _, logits, _ = net(x[ctx][None], hy, torch.ones_like(hy, dtype=torch.bool), x[targets][None],
                               _features(hy, 0, 1), need_af=False)
            out[n]["nll"].append(float(bar_nll(logits[0], y[targets], net.borders)))
            out[n]["spearman"].append(spearman(bar_mean(logits[0], net.borders), y[targets]))
    net.train(was_training)
    return out


@torch.no_grad()
def history_swap_correlation(net: torch.nn.Module, tasks: list[dict[str, torch.Tensor]], n_hist: int,
                             af_name: str | None = None, n_init: int = 5, budget: int = 50,
                             seed: int = 0) -> list[float]:
    """Per task ``i``: Spearman correlation over task ``i``'s candidates (outside both histories) between the
    acquisition under ``n_hist`` random points of task ``i`` and under ``n_hist`` random points of task
    ``i + 1`` (modulo the number of tasks; their own ``x`` and ``y``).

    ``af_name`` as in :meth:`zoo.methods.nap.NAPNetwork.forward` (``None``: the network's own, the policy for NAP);
    ``t / T`` is read as ``n_init`` initial points then trials of a ``budget``-trial run.
    """
    if len(tasks) < 2:
        raise ValueError("history_swap_correlation needs at least two tasks (one lends its history to the other)")
    was_training = net.training
    net.eval()
    hists = []
    for i, task in enumerate(tasks):
        if task["x"].shape[0] <= 2 * n_hist:
            raise ValueError(f"task {i} has {task['x'].shape[0]} candidates; needs more than {2 * n_hist}")
        hists.append(torch.randperm(task["x"].shape[0], generator=key_generator(seed, "nap-swap", i))[:n_hist])
    corr = []
    for i, task in enumerate(tasks):
        j = (i + 1) % len(tasks)
        own, other = hists[i], hists[j]
        keep = torch.ones(task["x"].shape[0], dtype=torch.bool)
        keep[own] = False
        scores = []
        for hx, hy in ((task["x"][own], task["y"][own]), (tasks[j]["x"][other], tasks[j]["y"][other])):
            hy = hy[None]
            af, _, _ = net(hx[None], hy, torch.ones_like(hy, dtype=torch.bool), task["x"][None],
                           _features(hy, n_init, budget), af_name)
            scores.append(af[0, keep])
        corr.append(spearman(scores[0], scores[1]))
    net.train(was_training)
    return corr


def summarise_diagnostics(curves: dict[int, dict[str, list[float]]], swap: list[float]) -> dict[str, Any]:
    """Means with 95% CIs (``zoo.training.metrics.mean_ci95``) over tasks, and the paired differences the tests and README
    quote: NLL at the largest minus the smallest context (negative: the model uses its context), Spearman at the
    largest minus the smallest (positive: it does)."""
    from zoo.training.metrics import mean_ci95, paired_difference_ci95

    sizes = sorted(curves)
    out: dict[str, Any] = {"context_sizes": sizes, "tasks": len(curves[sizes[0]]["nll"])}
    for key in ("nll", "spearman"):
        out[key] = {str(n): dict(zip(("mean", "ci95"), mean_ci95(curves[n][key]))) for n in sizes}
    lo, hi = sizes[0], sizes[-1]
    d, ci = paired_difference_ci95(curves[hi]["nll"], curves[lo]["nll"])
    out[f"nll_{hi}_minus_{lo}"] = {"diff": d, "ci95": ci}
    d, ci = paired_difference_ci95(curves[hi]["spearman"], curves[lo]["spearman"])
    out[f"spearman_{hi}_minus_{lo}"] = {"diff": d, "ci95": ci}
    out["history_swap_spearman"] = dict(zip(("mean", "ci95"), mean_ci95(swap)))
    return out
