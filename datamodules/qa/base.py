"""Multi-source multiple-choice data: source tasks and one low-resource target task, batches one task at a time.

A training item is one *meta-iteration*: a batch of ``batch_size`` items from every source task (each batch from
one task) and one batch from the target's low-resource train subset, all drawn by a generator keyed on
``(seed, epoch, index)`` (:func:`datamodules.episodes.episode_generator`), so the stream is the same on any
machine and striped over DDP ranks like every other SeededDataModule. The validation split is the target's dev
set (model selection), the test split its test set, in fixed batches; items keep their index in the list, so
per-item results are gathered and de-duplicated by :meth:`zoo.training.base.ZooModule.report_items`.

With ``reward_batches`` > 1 a training item also holds ``"reward_target"``: ``reward_batches * batch_size``
target items (at most all of them, without replacement) on which a meta-learner measures its source rewards, so
that one small target batch's noise does not decide them. ``mislabelled_sources`` turns source tasks harmful
(:func:`mislabel`) for benchmarks where the weighting of the sources must matter.

A batch (:func:`collate_items`) is ``{"prompt": [B] str, "choices": [B][C] str (padded with ""), "mask": [B, C]
bool, "answer": [B] long, "index": [B] long}``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import SeededDataModule
from datamodules.episodes import episode_generator
from datamodules.qa.items import MCItem, MCTask, low_resource

_SPLIT = {"train": "train", "val": "dev", "test": "test"}  # Lightning's stage -> the task split it reads


def collate_items(items: Sequence[MCItem], index: Sequence[int]) -> dict[str, Any]:
    """One batch of items (see the module docstring); ``index`` are their positions in their split."""
    width = max(len(x.choices) for x in items)
    return {"prompt": [x.prompt for x in items],
            "choices": [list(x.choices) + [""] * (width - len(x.choices)) for x in items],
            "mask": torch.tensor([[j < len(x.choices) for j in range(width)] for x in items]),
            "answer": torch.tensor([x.answer for x in items]), "index": torch.tensor(list(index))}


def mislabel(items: Sequence[MCItem], task: str) -> list[MCItem]:
    """``items`` with every answer moved to a wrong choice, drawn uniformly by a generator keyed on the task name
    (the same on any machine, independent of the run's seed): a *harmful* source task.

    Why wrong rather than shuffled answers: a uniformly shuffled label is still right 1/C of the time, and its
    expected gradient only flattens the scores (a source that slows transfer down); a label that is always a
    distractor pulls the scorer away from the answer, so a weighting that does not notice it pays for it. The
    prompts and choices stay, so the harmful source looks like its clean twin to everything but its labels.
    """
    g = torch.Generator().manual_seed(zlib.crc32(task.encode()))
    out = []
    for x in items:
        wrong = int(torch.randint(len(x.choices) - 1, (1,), generator=g))
        out.append(MCItem(x.context, x.question, x.choices, wrong + (wrong >= x.answer), x.id))
    return out


class MetaIterationDataset(Dataset):
    """Key ``(epoch, index)`` -> ``{"sources": {name: batch}, "target": batch}`` (see the module docstring)."""

    def __init__(self, sources: dict[str, list[MCItem]], target: list[MCItem], batch_size: int, seed: int,
                 reward_batches: int = 1):
        self.sources, self.target, self.batch_size, self.seed = sources, target, batch_size, seed
        self.reward_batches = reward_batches

    def _draw(self, items: list[MCItem], g: torch.Generator, size: int | None = None) -> dict[str, Any]:
        take = torch.randperm(len(items), generator=g)[: size or self.batch_size].tolist()
        return collate_items([items[i] for i in take], take)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        g = episode_generator(self.seed, "train", epoch, index)
        out = {"sources": {name: self._draw(items, g) for name, items in self.sources.items()},
               "target": self._draw(self.target, g)}
        if self.reward_batches > 1:  # drawn last, so the other batches are those of reward_batches = 1
            out["reward_target"] = self._draw(self.target, g, self.reward_batches * self.batch_size)
        return out


class ItemBatches(Dataset):
    """Fixed consecutive batches of one split: key ``(epoch, b)`` -> batch ``b`` (the epoch is ignored)."""

    def __init__(self, items: list[MCItem], batch_size: int):
        self.items, self.batch_size = items, batch_size

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        b = key[1]
        idx = list(range(b * self.batch_size, min(len(self.items), (b + 1) * self.batch_size)))
        return collate_items([self.items[i] for i in idx], idx)


class MultipleChoiceDataModule(SeededDataModule):
    """Source tasks and a low-resource target task; a subclass says where the tasks come from (``load_tasks``).

    Args:
        target: name of the target task.
        target_size: items of the target's train split used (drawn by ``seed``, nested across sizes;
            None: all of them).
        sources: source task names (None: every task but the target).
        batch_size: items per task batch (sources and target alike).
        iterations_per_epoch: meta-iterations (training items) per epoch.
        eval_batch_size: items per validation/test batch.
        dev_size / test_size: use only the first that many dev/test items of the target (None: all).
        seed: draws the target subset and the training batches.
        reward_batches: target batches per meta-iteration on which source rewards are measured (1: the training
            target batch itself; see the module docstring).
        mislabelled_sources: source tasks whose train answers :func:`mislabel` moves to a wrong choice (harmful
            sources; the default none).
    """

    def __init__(self, target: str, target_size: int | None = 32, sources: list[str] | None = None,
                 batch_size: int = 16, iterations_per_epoch: int = 50, eval_batch_size: int = 64,
                 dev_size: int | None = None, test_size: int | None = None, seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0, reward_batches: int = 1,
                 mislabelled_sources: list[str] | None = None):
        super().__init__(seed, eval_seed, num_workers)
        self.reward_batches, self.mislabelled_sources = reward_batches, list(mislabelled_sources or [])
        for name, value in (("batch_size", batch_size), ("iterations_per_epoch", iterations_per_epoch),
                            ("eval_batch_size", eval_batch_size), ("reward_batches", reward_batches)):
            if value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 1, got {value}")
        self.target, self.target_size, self.source_filter = target, target_size, sources
        self.batch_size, self.iterations_per_epoch, self.eval_batch_size = batch_size, iterations_per_epoch, eval_batch_size
        self.dev_size, self.test_size = dev_size, test_size
        self.tasks: dict[str, MCTask] = {}
        self.source_names: list[str] = []
        self.target_items: dict[str, list[MCItem]] = {}

    def load_tasks(self) -> dict[str, MCTask]:  # pragma: no cover - interface
        """Every task by name (sources and target)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.tasks:
            return
        tasks = self.load_tasks()
        name = type(self).__name__
        if self.target not in tasks:
            raise ValueError(f"{name}: target {self.target!r} is not a task; known tasks: {sorted(tasks)}")
        sources = [t for t in tasks if t != self.target] if self.source_filter is None else list(self.source_filter)
        bad = [s for s in sources if s not in tasks or s == self.target]
        if bad:
            raise ValueError(f"{name}: sources {bad} are unknown or the target; known tasks: {sorted(tasks)}")
        if not sources:
            raise ValueError(f"{name}: no source tasks")
        for s in sources:
            if not tasks[s].train:
                raise ValueError(f"{name}: source task {s!r} has no train items")
        bad = [s for s in self.mislabelled_sources if s not in sources]
        if bad:
            raise ValueError(f"{name}: mislabelled_sources {bad} are not among the sources {sources}")
        tasks = {**tasks, **{s: MCTask(s, mislabel(tasks[s].train, s), tasks[s].dev, tasks[s].test)
                             for s in self.mislabelled_sources}}
        target = tasks[self.target]
        train = target.train if self.target_size is None else low_resource(
            target.train, self.target_size, self.seed, where=f"{name} target {self.target!r}")
        dev, test = target.dev[: self.dev_size], target.test[: self.test_size]
        if not dev or not test:
            raise ValueError(f"{name}: target {self.target!r} needs dev and test items (has {len(dev)} dev, "
                             f"{len(test)} test)")
        self.tasks, self.source_names = tasks, sources
        self.target_items = {"train": train, "dev": dev, "test": test}

    def loader(self, split: str) -> DataLoader:
        self.setup()
        if split == "train":
            dataset = MetaIterationDataset({s: self.tasks[s].train for s in self.source_names},
                                           self.target_items["train"], self.batch_size, self.split_seed("train"),
                                           self.reward_batches)
            return self.striped_loader(dataset, split, self.iterations_per_epoch, batch_size=None)
        dataset = ItemBatches(self.target_items[_SPLIT[split]], self.eval_batch_size)
        return self.striped_loader(dataset, split, len(dataset), batch_size=None)
