"""The Glyphs DataModule: N-way K-shot episodes over a cached build (:class:`GlyphsDataModule`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from datamodules.episodes import SPLITS, Source, TensorSource
from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.glyphs import build
from datamodules.images.glyphs.fonts import class_name
from datamodules.images.transforms import GRAY_MEAN, GRAY_STD


class GlyphsDataModule(ImageEpisodicDataModule):
    """N-way K-shot episodes over the Glyphs benchmark (:mod:`datamodules.images.glyphs`): ~2,000 characters, 20 renderings each.

    Args:
        cache_dir: where the build goes, as ``<cache_dir>/glyphs/<variant>`` (default ``$METAZOO_DATA`` or
            ``~/.cache/metazoo``); built there on first use. The sources are the fonts matplotlib installs.
        image_size: side of the square grayscale images (28 as Omniglot in Vinyals et al.).
        instances_per_class: renderings per class (>= k_shot + q_query).
        build_seed: seed of the rendering distortions (the data); ``seed`` keys the episodes.
        augment: random crop after 2-pixel reflect padding at training time (no flips: mirrored glyphs differ).
        invert: for ``zoo predict`` only: invert the user's images, which are usually dark ink on light paper,
            to the benchmark's white ink on black (set false for images that already are light on dark).
        predict_support_dir, predict_query_dir, predict_query_chunk: ``zoo predict`` on your own character
            images (see :class:`~datamodules.images.ImageEpisodicDataModule`).
        n_way ... episodes_per_batch: see :class:`~datamodules.base.EpisodicDataModule`.
    """

    def __init__(self, cache_dir: str | None = None, image_size: int = 28, instances_per_class: int = 20,
                 build_seed: int = 0, augment: bool = False, invert: bool = True,
                 predict_support_dir: str | None = None, predict_query_dir: str | None = None,
                 predict_query_chunk: int | None = None, n_way: int = 5, k_shot: int = 1, q_query: int = 15,
                 train_n_way: int | None = None, train_k_shot: int | None = None, train_q_query: int | None = None,
                 train_episodes: int = 100, val_episodes: int = 500, test_episodes: int = 1000, seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0, episodes_per_batch: int = 1):
        super().__init__(image_size=image_size, channels=1, mean=list(GRAY_MEAN), std=list(GRAY_STD),
                         augment=augment, augment_pad=2, augment_flip=False, invert=invert,
                         predict_support_dir=predict_support_dir, predict_query_dir=predict_query_dir,
                         predict_query_chunk=predict_query_chunk, n_way=n_way, k_shot=k_shot, q_query=q_query,
                         train_n_way=train_n_way, train_k_shot=train_k_shot, train_q_query=train_q_query,
                         train_episodes=train_episodes, val_episodes=val_episodes, test_episodes=test_episodes,
                         seed=seed, eval_seed=eval_seed, num_workers=num_workers,
                         episodes_per_batch=episodes_per_batch)
        build.validate_args(image_size, instances_per_class, build.MIN_FACES)
        self.save_hyperparameters()
        self.cache_dir, self.instances_per_class, self.build_seed = cache_dir, instances_per_class, build_seed
        # Tests narrow the classes (and thus the build) through this attribute; it is not a config switch.
        self._codepoints: Sequence[int] | None = None
        self.data: build.GlyphsData | None = None

    def prepare_data(self) -> None:
        """Builds the cache once (Lightning calls this on one process per node before ``setup``); not for
        ``zoo predict``, which reads only its two folders (:meth:`predicting`)."""
        if self.predicting():
            return
        build.build_glyphs(self.cache_dir, self.image_size, self.instances_per_class, self.build_seed,
                     codepoints=self._codepoints)

    def build_sources(self) -> dict[str, Source]:
        self.data = data = build.load_glyphs(self.cache_dir, self.image_size, self.instances_per_class, self.build_seed,
                                       codepoints=self._codepoints)
        names = {i: class_name(int(cp)) for i, cp in enumerate(data.codepoints.tolist())}
        images = torch.from_numpy(data.images)
        labels = torch.from_numpy(data.labels)
        item_split = torch.from_numpy(data.class_split.astype(np.int64))[labels]
        sources: dict[str, Source] = {}
        for k, split in enumerate(SPLITS):
            idx = torch.nonzero(item_split == k).squeeze(1)
            split_labels = labels[idx]
            sources[split] = TensorSource(images[idx].contiguous(), split_labels,
                                          {int(c): names[int(c)] for c in split_labels.unique()},
                                          self.transform(split))
        return sources
