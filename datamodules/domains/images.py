"""What the image-folder domain datasets share: the DataModule that reads images lazily with Pillow
(:class:`~datamodules.images.source.ImageSource`; decoded once into memory when a split fits in
``AUTO_CACHE_MAX_BYTES``), normalised with ImageNet statistics, and the in-domain holdout. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from datamodules.domains.base import DomainDataModule
from datamodules.images.source import AUTO_CACHE_MAX_BYTES, ImageSource
from datamodules.images.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform


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
