"""The DataModule bases: the seeded, rank-striped one every data module extends, and the episodic one.

:class:`SeededDataModule` holds what every data module of the zoo shares, whatever its items are (episodes, BO
tasks, domains): the ``seed`` and ``eval_seed`` that key every item, the per-rank striping of items under DDP and
the loader construction. :class:`EpisodicDataModule` adds the episode setting: a subclass only says where its
items are (``build_sources``); the fixed evaluation sets, the striping and the loaders behave the same for every
dataset. :class:`datamodules.bo.FunctionDataModule` is the other user.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from datamodules.check import check_counts, check_splits
from datamodules.episodes import SPLITS, EpisodeDataset, EpisodeSampler, Source


def dataset_name(cls: type) -> str:
    """The dataset's name of a DataModule class, in messages, tables and episode-set records: the class name without
    the ``DataModule`` suffix of the naming rule (:mod:`datamodules`), so ``GlyphsDataModule`` says ``Glyphs`` as
    it did before the rule, and records made then keep their name."""
    return cls.__name__.removesuffix("DataModule")


class SeededDataModule(pl.LightningDataModule):
    """Items that are pure functions of ``(seed, split, epoch, index)``, striped over ranks.

    Rank ``r`` of ``W`` takes items ``r, r + W, ...`` (:class:`~datamodules.episodes.EpisodeSampler`, which pads
    every rank to the same count; :meth:`zoo.training.base.ZooModule.report_items` drops the padding repeats). Evaluation
    splits always use epoch 0, i.e. one fixed set per seed.

    Args:
        seed: keys every item; the same seed gives the same items on any machine or world size.
        eval_seed: keys the validation and test items instead of ``seed`` when set. Benchmarks vary ``seed``
            (the training items) across runs while every run is evaluated on the same fixed items.
        num_workers: data-loader worker processes; items do not depend on it.
    """

    def __init__(self, seed: int = 0, eval_seed: int | None = None, num_workers: int = 0):
        super().__init__()
        self.seed, self.eval_seed, self.num_workers = seed, eval_seed, num_workers

    @property
    def name(self) -> str:
        """:func:`dataset_name` of the class; a DataModule whose dataset has variants overrides it."""
        return dataset_name(type(self))

    def split_seed(self, split: str) -> int:
        """The seed that keys the items of ``split``."""
        return self.seed if split == "train" or self.eval_seed is None else self.eval_seed

    def striped_loader(self, dataset: Dataset, split: str, num_items: int, items_per_batch: int = 1,
                       **loader_kwargs: Any) -> DataLoader:
        """A loader over this rank's share of the ``num_items`` items of ``split``, keyed ``(epoch, index)``;
        ``items_per_batch`` > 1 hands the dataset lists of that many keys (meta-batches), striped as before."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpisodeSampler(num_items, rank=rank, world_size=world, fixed_epoch=None if split == "train" else 0,
                                 episodes_per_batch=items_per_batch)
        return DataLoader(dataset, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, **loader_kwargs)

    def loader(self, split: str) -> DataLoader:  # pragma: no cover - interface
        """This rank's loader for ``split``."""
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


class EpisodicDataModule(SeededDataModule):
    """N-way K-shot Q-query episodes from a dataset's class-disjoint train/val/test splits.

    Args:
        n_way: classes per evaluation episode (5 in most papers).
        k_shot: labelled support items per class.
        q_query: query items per class (15 is the usual protocol).
        train_n_way: classes per training episode, if different (``None``: ``n_way``; 0 is an error, not "unset");
            Snell et al. train 1-shot with 30-way and 5-shot with 20-way episodes.
        train_k_shot / train_q_query: likewise for shots and queries during training.
        train_episodes: training episodes per epoch.
        val_episodes: size of the fixed validation set (500 is the common protocol).
        test_episodes: size of the fixed test set (1000, or 600 in older papers).
        seed, eval_seed, num_workers: see :class:`SeededDataModule` (the items are episodes).
        episodes_per_batch: training episodes per optimiser step (a meta-batch), collated into one batched
            Episode with a leading dimension B. Evaluation stays at one episode per step, so per-episode metrics,
            their order and their DDP striping do not depend on it.
    """

    def __init__(self, n_way: int = 5, k_shot: int = 1, q_query: int = 15, train_n_way: int | None = None,
                 train_k_shot: int | None = None, train_q_query: int | None = None, train_episodes: int = 100,
                 val_episodes: int = 500, test_episodes: int = 1000, seed: int = 0, eval_seed: int | None = None,
                 num_workers: int = 0, episodes_per_batch: int = 1):
        super().__init__(seed, eval_seed, num_workers)
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        check_counts(dataset_name(type(self)), n_way=n_way, k_shot=k_shot, q_query=q_query, train_n_way=train_n_way,
                     train_k_shot=train_k_shot, train_q_query=train_q_query, train_episodes=train_episodes,
                     val_episodes=val_episodes, test_episodes=test_episodes)
        self.train_n_way = n_way if train_n_way is None else train_n_way
        self.train_k_shot = k_shot if train_k_shot is None else train_k_shot
        self.train_q_query = q_query if train_q_query is None else train_q_query
        self.episodes = {"train": train_episodes, "val": val_episodes, "test": test_episodes}
        if episodes_per_batch < 1:
            raise ValueError(f"episodes_per_batch must be >= 1, got {episodes_per_batch}")
        self.episodes_per_batch = episodes_per_batch
        self.sources: dict[str, Source] = {}

    # -- what a dataset provides ---------------------------------------------------------------------------------
    def build_sources(self) -> dict[str, Source]:
        """Return one Source per split in ``SPLITS``; the splits must be class-disjoint."""
        raise NotImplementedError

    def episode_extras(self, source: Source, items: Any, classes: Any) -> dict:
        """Extras a dataset adds to each episode (entity spans, NOTA masks, ...); none by default."""
        return {}

    # -- shared machinery ----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.sources and stage is None:
            return  # dataset() making sure the sources exist
        if not self.sources:
            sources = self.build_sources()
            missing = [s for s in SPLITS if s not in sources]
            if missing:
                raise ValueError(f"{self.name}.build_sources() returned no split(s) {missing}")
            self.sources = sources
        check_splits(self, stage)  # fail before training, not after it (a fit checks the test split too)

    def episode_setting(self, split: str) -> tuple[int, int, int]:
        if split == "train":
            return self.train_n_way, self.train_k_shot, self.train_q_query
        return self.n_way, self.k_shot, self.q_query

    def dataset(self, split: str) -> EpisodeDataset:
        self.setup()
        n, k, q = self.episode_setting(split)
        extras = None if type(self).episode_extras is EpisodicDataModule.episode_extras else self.episode_extras
        return EpisodeDataset(self.sources[split], n, k, q, seed=self.split_seed(split), split=split, name=self.name,
                              extras_fn=extras)

    def loader(self, split: str) -> DataLoader:
        """Episodes of one split for this rank (one collated episode, or a meta-batch of B in training)."""
        return self.striped_loader(self.dataset(split), split, self.episodes[split], batch_size=None,
                                   items_per_batch=self.episodes_per_batch if split == "train" else 1)
