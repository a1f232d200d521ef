"""What a meta-BO task is and how tasks are batched: the task dict (candidate pool, min-max normalised values, an
initial design), the family interface a synthetic source implements, and the dataset keyed ``(epoch, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset


def minmax_normalise(y: torch.Tensor, name: str = "y") -> torch.Tensor:
    """``(y - min) / (max - min)``; a constant ``y`` has no optimum to find and is an error."""
    if not torch.isfinite(y).all():
        raise ValueError(f"{name} has non-finite values")
    lo, hi = y.min(), y.max()
    if not hi > lo:
        raise ValueError(f"{name} is constant ({float(lo)}): min-max normalisation needs a spread")
    return (y - lo) / (hi - lo)


def make_task(x: torch.Tensor, y: torch.Tensor, init: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
    """The task dict every sampler returns (``y`` normalised here)."""
    return {"x": x.float(), "y": minmax_normalise(y.double()).float(), "init": init.long(),
            "index": torch.tensor(index, dtype=torch.long)}


def collate_tasks(tasks: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stacks tasks into a batch, padding candidate pools of different sizes; ``valid`` marks real candidates."""
    if not tasks:
        raise ValueError("collate_tasks needs at least one task")
    dims = {int(t["x"].shape[1]) for t in tasks}
    if len(dims) > 1:
        raise ValueError(f"tasks of one batch must share the input dimension, got {sorted(dims)}")
    n_max = max(int(t["x"].shape[0]) for t in tasks)
    n_init = {int(t["init"].numel()) for t in tasks}
    if len(n_init) > 1:
        raise ValueError(f"tasks of one batch must share the initial-design size, got {sorted(n_init)}")
    bsz, d = len(tasks), dims.pop()
    x = torch.zeros(bsz, n_max, d)
    y = torch.zeros(bsz, n_max)
    valid = torch.zeros(bsz, n_max, dtype=torch.bool)
    for i, t in enumerate(tasks):
        n = t["x"].shape[0]
        x[i, :n], y[i, :n], valid[i, :n] = t["x"], t["y"], True
    return {"x": x, "y": y, "valid": valid, "init": torch.stack([t["init"] for t in tasks]),
            "index": torch.stack([t["index"] for t in tasks])}


def draw_initial_design(n: int, n_init: int, g: torch.Generator) -> torch.Tensor:
    """``n_init`` distinct candidate indices out of ``n``, uniformly."""
    if n_init > n:
        raise ValueError(f"an initial design of {n_init} points needs at least that many candidates, got {n}")
    return torch.randperm(n, generator=g)[:n_init]


class TaskFamily:
    """A distribution over functions on ``[0, 1]^dim``; ``sample`` draws one task's pool and its values."""

    dim: int

    def sample(self, num_candidates: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [N, dim], y [N])``, raw (not yet normalised), drawn with ``g`` only."""
        raise NotImplementedError


class TaskDataset(Dataset):
    """Map-style dataset whose item ``(epoch, index)`` is one task; ``make`` is a pure function of the key."""

    def __init__(self, make, split: str):
        self.make, self.split = make, split

    def __len__(self) -> int:  # the sampler decides how many tasks an epoch has
        raise TypeError("TaskDataset is indexed by (epoch, index) keys from EpisodeSampler")

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        return self.make(self.split, epoch, index)
