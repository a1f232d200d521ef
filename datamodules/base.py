"""The DataModule every episodic dataset extends: sources in, episode loaders out.

A subclass only says where its items are (``build_sources``); the episode setting, the fixed evaluation sets,
the per-rank striping and the loaders are all here, so they behave the same for every dataset.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from datamodules.episodes import SPLITS, EpisodeDataset, EpisodeSampler, Source


class EpisodicDataModule(pl.LightningDataModule):
    """N-way K-shot Q-query episodes from a dataset's class-disjoint train/val/test splits.

    Args:
        n_way: classes per evaluation episode (5 in most papers).
        k_shot: labelled support items per class.
        q_query: query items per class (15 is the usual protocol).
        train_n_way: classes per training episode, if different; Snell et al. train 1-shot with 30-way and 5-shot
            with 20-way episodes.
        train_k_shot / train_q_query: likewise for shots and queries during training.
        train_episodes: training episodes per epoch.
        val_episodes: size of the fixed validation set (500 is the common protocol).
        test_episodes: size of the fixed test set (1000, or 600 in older papers).
        seed: keys every episode; the same seed gives the same episodes on any machine or world size.
        eval_seed: keys the validation and test episodes instead of ``seed`` when set. Benchmarks vary ``seed``
            (the training episodes) across runs while every run is tested on the same fixed episodes.
        num_workers: data-loader worker processes; episodes do not depend on it.
        episodes_per_batch: training episodes per optimiser step (a meta-batch), collated into one batched
            Episode with a leading dimension B. Evaluation stays at one episode per step, so per-episode metrics,
            their order and their DDP striping do not depend on it.
    """

    def __init__(self, n_way: int = 5, k_shot: int = 1, q_query: int = 15, train_n_way: int | None = None,
                 train_k_shot: int | None = None, train_q_query: int | None = None, train_episodes: int = 100,
                 val_episodes: int = 500, test_episodes: int = 1000, seed: int = 0, eval_seed: int | None = None,
                 num_workers: int = 0, episodes_per_batch: int = 1):
        super().__init__()
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.train_n_way = train_n_way or n_way
        self.train_k_shot = train_k_shot or k_shot
        self.train_q_query = train_q_query or q_query
        self.episodes = {"train": train_episodes, "val": val_episodes, "test": test_episodes}
        self.seed, self.eval_seed, self.num_workers = seed, eval_seed, num_workers
        if episodes_per_batch < 1:
            raise ValueError(f"episodes_per_batch must be >= 1, got {episodes_per_batch}")
        self.episodes_per_batch = episodes_per_batch
        self.sources: dict[str, Source] = {}

    # -- what a dataset provides ---------------------------------------------------------------------------------
    def build_sources(self) -> dict[str, Source]:
        """Return one Source per split in ``SPLITS``; the splits must be class-disjoint."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def episode_extras(self, source: Source, items: Any, classes: Any) -> dict:
        """Extras a dataset adds to each episode (entity spans, NOTA masks, ...); none by default."""
        return {}

    # -- shared machinery ----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.sources:
            sources = self.build_sources()
            missing = [s for s in SPLITS if s not in sources]
            if missing:
                raise ValueError(f"{self.name}.build_sources() returned no split(s) {missing}")
            self.sources = sources

    def episode_setting(self, split: str) -> tuple[int, int, int]:
        if split == "train":
            return self.train_n_way, self.train_k_shot, self.train_q_query
        return self.n_way, self.k_shot, self.q_query

    def dataset(self, split: str) -> EpisodeDataset:
        self.setup()
        n, k, q = self.episode_setting(split)
        extras = None if type(self).episode_extras is EpisodicDataModule.episode_extras else self.episode_extras
        seed = self.seed if split == "train" or self.eval_seed is None else self.eval_seed
        return EpisodeDataset(self.sources[split], n, k, q, seed=seed, split=split, name=self.name, extras_fn=extras)

    def loader(self, split: str) -> DataLoader:
        """Episodes of one split for this rank; evaluation splits always use epoch 0, i.e. one fixed set."""
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpisodeSampler(self.episodes[split], rank=rank, world_size=world,
                                 fixed_epoch=None if split == "train" else 0,
                                 episodes_per_batch=self.episodes_per_batch if split == "train" else 1)
        return DataLoader(self.dataset(split), sampler=sampler, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
