"""The DataModule every meta-BO task source extends: ``train_tasks`` new tasks per epoch, fixed validation and test
sets, every task a pure function of ``(seed, split, epoch, index)``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from datamodules.base import SeededDataModule
from datamodules.bo.tasks import (
    TaskDataset,
    collate_tasks,
)
from datamodules.episodes import SPLITS


class FunctionDataModule(SeededDataModule):
    """Tasks for meta-BO: ``train_tasks`` new tasks per epoch, fixed validation and test sets.

    A training batch of ``tasks_per_batch`` tasks is one PPO iteration of :class:`zoo.methods.nap.NAPModule` (official: 60
    episodes). Evaluation items are ``(function, initial design)`` pairs: ``val_tasks`` functions x ``val_seeds``
    designs and ``test_tasks`` x ``test_seeds`` (HPO-B style: every method sees the same functions from the same
    ``eval_n_init`` initial points, and several designs per function give the "seeds").

    Args:
        num_candidates: pool size of training tasks.
        eval_num_candidates: pool size of validation/test tasks (defaults to ``num_candidates``).
        train_tasks: training tasks per epoch.
        tasks_per_batch: tasks per training batch.
        val_tasks, val_seeds, test_tasks, test_seeds: sizes of the fixed evaluation sets.
        train_n_init: initial random points of training episodes (official 0).
        eval_n_init: initial points of evaluation episodes (HPO-B: 5).
        eval_batch_size: evaluation tasks per batch.
        seed, eval_seed, num_workers: see :class:`~datamodules.base.SeededDataModule` (the items are tasks).
    """

    def __init__(self, num_candidates: int = 256, eval_num_candidates: int | None = None, train_tasks: int = 600,
                 tasks_per_batch: int = 60, val_tasks: int = 32, val_seeds: int = 1, test_tasks: int = 20,
                 test_seeds: int = 5, train_n_init: int = 0, eval_n_init: int = 5, eval_batch_size: int = 16,
                 seed: int = 0, eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(seed, eval_seed, num_workers)
        for arg, v in (("num_candidates", num_candidates), ("train_tasks", train_tasks),
                       ("tasks_per_batch", tasks_per_batch), ("val_tasks", val_tasks), ("val_seeds", val_seeds),
                       ("test_tasks", test_tasks), ("test_seeds", test_seeds), ("eval_batch_size", eval_batch_size)):
            if int(v) < 1:
                raise ValueError(f"{arg} must be >= 1, got {v}")
        if train_n_init < 0 or eval_n_init < 0:
            raise ValueError(f"train_n_init and eval_n_init must be >= 0, got {train_n_init}, {eval_n_init}")
        self.num_candidates = num_candidates
        self.eval_num_candidates = eval_num_candidates or num_candidates
        self.train_tasks, self.tasks_per_batch = train_tasks, tasks_per_batch
        self.counts = {"val": (val_tasks, val_seeds), "test": (test_tasks, test_seeds)}
        self.train_n_init, self.eval_n_init = train_n_init, eval_n_init
        self.eval_batch_size = eval_batch_size

    def setup(self, stage: str | None = None) -> None:
        """Nothing to load for synthetic families; file-backed families read their files here."""

    # -- what a family provides ----------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def task(self, split: str, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """Task ``index`` of ``split``: a pure function of ``(seed, split, epoch, index)``."""
        raise NotImplementedError

    def num_items(self, split: str) -> int:
        """Number of items per epoch of ``split``."""
        if split == "train":
            return self.train_tasks
        n, s = self.counts[split]
        return n * s

    # -- shared machinery ----------------------------------------------------------------------------------------
    def loader(self, split: str) -> DataLoader:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.setup("fit" if split == "train" else split)
        bs = self.tasks_per_batch if split == "train" else self.eval_batch_size
        return self.striped_loader(TaskDataset(self.task, split), split, self.num_items(split), batch_size=bs,
                                   collate_fn=collate_tasks)

    def fixed_tasks(self, split: str) -> list[dict[str, torch.Tensor]]:
        """All items of an evaluation split (as the loaders give them on one process), for scripts."""
        self.setup(split)
        return [self.task(split, 0, i) for i in range(self.num_items(split))]
