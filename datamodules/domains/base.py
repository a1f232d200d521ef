"""The DataModules every domain-shift dataset extends: a subclass only says what its :class:`DomainSet` is.

:class:`ImageDomainsDataModule` adds what the image-folder datasets (DomainBed, WILDS) share: images read lazily with
Pillow (:class:`~datamodules.images.source.ImageSource`; decoded once into memory when a split fits in
``AUTO_CACHE_MAX_BYTES``), normalised with ImageNet statistics, and the in-domain holdout. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from datamodules.base import SeededDataModule, dataset_name
from datamodules.check import check_counts
from datamodules.domains.core import (
    DOMAIN_SPLITS,
    DomainBatches,
    DomainSequence,
    DomainSet,
    DomainStripeSampler,
    domain_statistics,
    super_domains,
)
from datamodules.images.source import AUTO_CACHE_MAX_BYTES, ImageSource
from datamodules.images.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform


class DomainDataModule(SeededDataModule):
    """Single-domain training batches and per-domain sequential evaluation over a dataset's domain splits.

    Args:
        support_size: unlabelled support items of a training group, and (unless ``eval_batch_size`` is set) the
            size of the adaptation batch at evaluation (the official ``sup_size``: 24 on iWildCam).
        query_size: labelled query items of a training group (official meta batch minus ``sup_size``: 16).
        groups_per_batch: single-domain groups per training batch (the meta-batch B of Algorithm 1; the official
            code uses 1). Supervised stages see the groups' items together.
        train_batches: training batches per epoch.
        eval_batch_size: batch size of the sequential evaluation loader; its first batch per domain is the
            adaptation batch (``None``: ``support_size``, as the official ``eval()``).
        super_domains: number of expert super-domains the training domains are grouped into (the model's
            ``num_experts`` must equal it; 10 on iWildCam).
        super_domain_method: ``"random"`` (the official seeded random partition) or ``"kmeans"`` (similarity
            clustering on :func:`~datamodules.domains.core.domain_statistics`); see
            :func:`~datamodules.domains.core.super_domains`.
        test_split: what the test loader evaluates: ``"test"`` (the held-out target domains) or ``"in_domain"``
            (held-out items of the training domains, where the dataset has them: the in-domain reference).
        seed: keys the training batches and the super-domain partition; evaluation is sequential and seed-free.
        eval_seed, num_workers: see :class:`~datamodules.base.SeededDataModule`.
    """

    def __init__(self, support_size: int = 24, query_size: int = 16, groups_per_batch: int = 1,
                 train_batches: int = 100, eval_batch_size: int | None = None, super_domains: int = 4,
                 super_domain_method: str = "random", test_split: str = "test", seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(seed, eval_seed, num_workers)
        check_counts(dataset_name(type(self)), support_size=support_size, query_size=query_size,
                     groups_per_batch=groups_per_batch, train_batches=train_batches,
                     eval_batch_size=eval_batch_size, super_domains=super_domains)
        if super_domain_method not in ("random", "kmeans"):
            raise ValueError(f"{self.name}: super_domain_method must be 'random' or 'kmeans', "
                             f"got {super_domain_method!r}")
        if test_split not in ("test", "in_domain"):
            raise ValueError(f"{self.name}: test_split must be 'test' or 'in_domain', got {test_split!r}")
        self.support_size, self.query_size, self.groups_per_batch = support_size, query_size, groups_per_batch
        self.train_batches = train_batches
        self.eval_batch_size = eval_batch_size or support_size
        self.num_super_domains, self.super_domain_method = super_domains, super_domain_method
        self.test_split = test_split
        self.data: DomainSet | None = None
        self.expert_of_domain: dict[int, int] = {}

    def build_domains(self) -> DomainSet:  # pragma: no cover - interface
        """The dataset's items, domain ids and domain splits."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        data = self.build_domains()
        if self.test_split not in data.splits():
            raise ValueError(f"{self.name}: test_split {self.test_split!r} needs held-out items of the training "
                             "domains, and this dataset has none")
        train = data.domain_ids("train")
        if self.num_super_domains > len(train):
            raise ValueError(f"{self.name}: super_domains={self.num_super_domains} but only {len(train)} training "
                             "domains; each expert needs at least one")
        features = domain_statistics(data) if self.super_domain_method == "kmeans" else None
        self.expert_of_domain = super_domains(train, self.num_super_domains, self.seed, self.super_domain_method,
                                              features)
        # Fail at set-up, naming the domain, rather than mid-epoch.
        DomainBatches(data, "train", self.support_size, self.query_size, self.groups_per_batch, self.seed)
        self.data = data
        for split in ("val", "test"):
            DomainSequence(data, self.eval_split(split), self.eval_batch_size)

    def eval_split(self, split: str) -> str:
        """The domain split a loader of ``split`` evaluates: ``test`` reads ``test_split``; ``val`` reads the
        training domains' held-out items when the dataset has no validation domains."""
        if split == "test":
            return self.test_split
        if split == "val" and not self.data.split_domains["val"]:
            return "in_domain"
        return split

    def experts_of(self) -> list[list[str]]:
        """Each expert's training domains by name (what the super-domain partition chose)."""
        self.setup()
        out: list[list[str]] = [[] for _ in range(self.num_super_domains)]
        for d, e in sorted(self.expert_of_domain.items()):
            out[e].append(self.data.domain_names[d])
        return out

    def loader(self, split: str) -> DataLoader:
        """Training: this rank's share of ``train_batches`` keyed batches. Evaluation: this rank's whole domains in
        order (``split`` ``"test"`` reads ``test_split``; ``"in_domain"`` may also be asked for directly)."""
        self.setup()
        if split == "train":
            ds = DomainBatches(self.data, "train", self.support_size, self.query_size, self.groups_per_batch,
                               self.split_seed("train"), self.expert_of_domain)
            return self.striped_loader(ds, "train", self.train_batches, batch_size=None)
        if split not in DOMAIN_SPLITS:
            raise ValueError(f"{self.name}: split must be one of {DOMAIN_SPLITS}, got {split!r}")
        seq = DomainSequence(self.data, self.eval_split(split), self.eval_batch_size)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        return DataLoader(seq, sampler=DomainStripeSampler(seq, rank, world), batch_size=None,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def summary(self) -> dict[str, Any]:
        """Domains and items per split, for benchmark records and ``zoo check``-style printing."""
        self.setup()
        return {s: {"domains": len(self.data.domain_ids(s)),
                    "items": sum(len(self.data.items(s, d)) for d in self.data.domain_ids(s))}
                for s in self.data.splits()}


class ImageDomainsDataModule(DomainDataModule):
    """Image settings shared by the file readers (arguments documented on the readers)."""

    def __init__(self, image_size: int = 224, resize: int | None = None, cache: bool | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if image_size < 1 or (resize is not None and resize < image_size):
            raise ValueError(f"{self.name}: need image_size >= 1 and resize >= image_size, got {image_size}, {resize}")
        self.image_size, self.resize, self.cache = image_size, resize, cache

    def image_source(self, files: Sequence[Path], labels: Sequence[int], class_names: dict[int, str]) -> ImageSource:
        source = ImageSource(files, labels, class_names, self.image_size, self.resize, channels=3,
                             transform=ImageTransform(IMAGENET_MEAN, IMAGENET_STD))
        source.cache = self.cache if self.cache is not None else source.nbytes <= AUTO_CACHE_MAX_BYTES
        return source


def holdout_mask(domains: torch.Tensor, train_domains: Sequence[int], fraction: float, seed: int) -> torch.Tensor:
    """Items of the training domains held out for in-domain evaluation: ``round(fraction * n)`` of each domain's
    ``n`` items, chosen by a generator keyed on ``(seed, domain)`` (DomainBed holds out 20% per environment)."""
    mask = torch.zeros(len(domains), dtype=torch.bool)
    for d in train_domains:
        idx = torch.nonzero(domains == d).squeeze(1)
        k = int(round(fraction * len(idx)))
        if k:
            order = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed * 100_003 + int(d)))
            mask[idx[order[:k]]] = True
    return mask
