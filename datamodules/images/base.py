"""The DataModule every image dataset extends: episodes from three class-disjoint :class:`ImageSource` splits,
fixed evaluation sets, transforms, caching, and `zoo predict` on the user's own support and query folders.

A dataset's module only lists its files (``build_sources``); nothing here downloads anything: a dataset checks
the layout it expects and, when the files are not there, says which layout that is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import EpisodicDataModule
from datamodules.episodes import SPLITS, Episode
from datamodules.images.source import (
    AUTO_CACHE_MAX_BYTES,
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageSource,
    SplitLists,
    list_class_folders,
    list_images,
    read_split_csv,
    resolve_listed_file,
    unreadable_images,
    warn_colour_images,
)
from datamodules.images.transforms import (
    GRAY_MEAN,
    GRAY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageTransform,
)


class ImageEpisodicDataModule(EpisodicDataModule):
    """Episodes from an image dataset, plus `zoo predict` on the user's own support and query folders.

    A subclass only lists files: its ``build_sources`` calls :meth:`make_source` once per split. Image arguments:

    Args:
        image_size: height and width fed to the network (84 for miniImageNet-style Conv-4 / ResNet-12 pipelines,
            28 for Omniglot).
        resize: shorter side before the centre crop; ``None`` means ``image_size`` (no crop margin). The FSL-Loss
            Conv-4 pipeline is ``resize=92, image_size=84``.
        channels: 3 (RGB) or 1 (grayscale).
        mean: per-channel normalisation mean (1 or ``channels`` values); ``None`` is ImageNet's for RGB and 0.5
            for grayscale.
        std: per-channel normalisation standard deviation; ``None`` as for ``mean``.
        augment: random reflect-pad crop (``augment_pad`` pixels) and, with ``augment_flip``, horizontal flips, on
            the training split only. Off by default: the FSL-Loss pipelines train without augmentation.
        augment_pad: padding in pixels of the random crop.
        augment_flip: also flip horizontally when augmenting; wrong for characters (a mirrored glyph is another).
        invert: ``255 - pixel`` after decoding, in training, evaluation and prediction alike (dark strokes on white
            paper become bright strokes on black, so zero padding is background).
        cache: decode each split once into one uint8 tensor in memory; ``None`` caches splits of at most
            ``AUTO_CACHE_MAX_BYTES`` (2 GiB) decoded.
        predict_support_dir: for ``zoo predict``: a folder with one sub-folder of labelled images per class.
        predict_query_dir: for ``zoo predict``: a folder of unlabelled images to classify.
        predict_query_chunk: queries per predict episode; ``None`` puts every query image in one episode (each
            chunk is an episode with the same support set; use it when the query folder does not fit in memory).

    The episode arguments (``n_way`` ... ``episodes_per_batch``) are :class:`EpisodicDataModule`'s.
    """

    #: The on-disk layout a reader expects; error messages quote it.
    layout: ClassVar[str] = ""

    def __init__(self, image_size: int = 84, resize: int | None = None, channels: int = 3,
                 mean: list[float] | None = None, std: list[float] | None = None, augment: bool = False,
                 augment_pad: int = 8, augment_flip: bool = True, invert: bool = False, cache: bool | None = None,
                 predict_support_dir: str | None = None, predict_query_dir: str | None = None,
                 predict_query_chunk: int | None = None,
                 n_way: int = 5, k_shot: int = 1, q_query: int = 15, train_n_way: int | None = None,
                 train_k_shot: int | None = None, train_q_query: int | None = None, train_episodes: int = 100,
                 val_episodes: int = 500, test_episodes: int = 1000, seed: int = 0, eval_seed: int | None = None,
                 num_workers: int = 0, episodes_per_batch: int = 1):
        super().__init__(n_way=n_way, k_shot=k_shot, q_query=q_query, train_n_way=train_n_way,
                         train_k_shot=train_k_shot, train_q_query=train_q_query, train_episodes=train_episodes,
                         val_episodes=val_episodes, test_episodes=test_episodes, seed=seed, eval_seed=eval_seed,
                         num_workers=num_workers, episodes_per_batch=episodes_per_batch)
        if channels not in (1, 3):
            raise ValueError(f"{self.name}: channels must be 1 or 3, got {channels}")
        if image_size < 1:
            raise ValueError(f"{self.name}: image_size must be >= 1, got {image_size}")
        if resize is not None and resize < image_size:
            raise ValueError(f"{self.name}: resize ({resize}) must be >= image_size ({image_size}): "
                             "it is the shorter side before the centre crop")
        mean = tuple(mean) if mean is not None else (IMAGENET_MEAN if channels == 3 else GRAY_MEAN)
        std = tuple(std) if std is not None else (IMAGENET_STD if channels == 3 else GRAY_STD)
        for arg, value in (("mean", mean), ("std", std)):
            if len(value) not in (1, channels):
                raise ValueError(f"{self.name}: {arg} needs 1 or {channels} values for {channels}-channel images, "
                                 f"got {list(value)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"{self.name}: std must be positive, got {list(std)}")
        if predict_query_chunk is not None and predict_query_chunk < 1:
            raise ValueError(f"{self.name}: predict_query_chunk must be >= 1 or None, got {predict_query_chunk}")
        self.image_size, self.resize, self.channels = image_size, resize, channels
        self.mean, self.std = mean, std
        self.augment, self.augment_pad, self.augment_flip = augment, augment_pad, augment_flip
        self.invert, self.cache = invert, cache
        self.predict_support_dir, self.predict_query_dir = predict_support_dir, predict_query_dir
        self.predict_query_chunk = predict_query_chunk

    # -- what subclasses call ------------------------------------------------------------------------------------
    def transform(self, split: str) -> ImageTransform:
        """Normalisation for every split; augmentation only for training."""
        return ImageTransform(self.mean, self.std, augment=self.augment and split == "train", pad=self.augment_pad,
                              flip=self.augment_flip)

    def make_source(self, split: str, files: Sequence[str | os.PathLike], labels: Sequence[int],
                    class_names: dict[int, str], bboxes: Sequence[Sequence[float] | None] | None = None,
                    rotations: Sequence[int] | None = None) -> ImageSource:
        """An :class:`ImageSource` with this module's image settings; ``split`` picks the transform."""
        if not files:
            raise FileNotFoundError(f"{self.name} [{split}]: no images found; expected layout:\n{self.layout}")
        if bboxes is not None and all(b is None for b in bboxes):
            bboxes = None
        if rotations is not None and not any(rotations):
            rotations = None
        source = ImageSource(files, labels, class_names, self.image_size, self.resize, self.channels,
                             transform=self.transform(split), cache=False, bboxes=bboxes, rotations=rotations,
                             invert=self.invert)
        source.cache = self.cache if self.cache is not None else source.nbytes <= AUTO_CACHE_MAX_BYTES
        return source

    def sources_from_lists(self, lists: dict[str, SplitLists], class_names: dict[int, str]) -> dict[str, ImageSource]:
        return {s: self.make_source(s, lists[s].files, lists[s].labels, class_names, lists[s].bboxes,
                                    lists[s].rotations) for s in SPLITS}

    def sources_from_split_dir(self, split_dir: str | os.PathLike, bases: Sequence[Path],
                               bbox_of: Callable[[Path], Sequence[float] | None] | None = None
                               ) -> dict[str, ImageSource]:
        """Sources from ``split_dir/{train,val,test}.csv`` (``filename,label``; see :func:`read_split_csv`).

        A filename is looked for under each of ``bases`` in turn. Class ids follow first appearance (train, then
        val, then test), as FSL-Loss numbers them; a label in two split files is an error, since the splits must
        be class-disjoint.
        """
        split_dir = Path(split_dir).expanduser()
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: split_dir {split_dir} does not exist; expected "
                                    f"{split_dir}/{{train,val,test}}.csv with header 'filename,label'")
        ids: dict[str, int] = {}
        owner: dict[str, str] = {}
        lists = {s: SplitLists() for s in SPLITS}
        for split in SPLITS:
            csv_path = split_dir / f"{split}.csv"
            for line_no, filename, label in read_split_csv(csv_path):
                if owner.setdefault(label, split) != split:
                    raise ValueError(f"{csv_path}:{line_no}: class {label!r} is also in {owner[label]}.csv; "
                                     "few-shot splits must be class-disjoint")
                path = resolve_listed_file(filename, label, bases, f"{csv_path}:{line_no}")
                bbox = None
                if bbox_of is not None:
                    bbox = bbox_of(path)
                    if bbox is None:
                        raise ValueError(f"{csv_path}:{line_no}: no bounding box is known for {path}")
                lists[split].add(path, ids.setdefault(label, len(ids)), bbox)
        return self.sources_from_lists(lists, {i: name for name, i in ids.items()})

    # -- shared machinery ----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the splits and check the episode setting against them now, not in the middle of an epoch.

        ``stage == "predict"`` builds nothing: `zoo predict` reads only the support and query folders, so the
        dataset a model was trained on need not be on the machine that predicts.
        """
        if stage == "predict" or (stage is None and self.sources):
            return  # setup() with no stage is how base.dataset() makes sure the sources exist
        super().setup(stage)

    def predicting(self) -> bool:
        """True while a trainer runs ``predict``: then only the support and query folders are read, so
        ``prepare_data`` builds no dataset (the training data need not exist where a model predicts)."""
        return self.trainer is not None and self.trainer.state.fn == "predict"

    def loader(self, split: str) -> DataLoader:
        self.setup()
        source = self.sources[split]
        if self.num_workers > 0 and isinstance(source, ImageSource):
            # Decode once here; forked workers then share the cache instead of each decoding its own.
            source.materialize()
        return super().loader(split)

    # -- zoo predict ---------------------------------------------------------------------------------------------
    PREDICT_LAYOUT: ClassVar[str] = (
        "  predict_support_dir/<class name>/<image>.{png,jpg,jpeg,bmp,gif,webp}   (one folder per class; labels "
        "0..N-1 in sorted folder-name order)\n"
        "  predict_query_dir/<image>.{png,jpg,jpeg,bmp,gif,webp}                  (unlabelled images)")

    def predict_sources(self) -> tuple[ImageSource, ImageSource, list[str]]:
        """Support and query sources for `zoo predict`, and the class names (index = support label)."""
        if not self.predict_support_dir or not self.predict_query_dir:
            raise ValueError(f"{self.name}: predict needs both predict_support_dir and predict_query_dir "
                             f"(got {self.predict_support_dir!r} and {self.predict_query_dir!r}); layout:\n"
                             f"{self.PREDICT_LAYOUT}")
        support_dir = Path(self.predict_support_dir).expanduser()
        query_dir = Path(self.predict_query_dir).expanduser()
        classes = list_class_folders(support_dir, "predict_support_dir", self.PREDICT_LAYOUT)
        loose = list_images(support_dir)
        if loose:
            raise ValueError(f"predict_support_dir: {support_dir} holds images outside any class folder "
                             f"({', '.join(p.name for p in loose[:3])}{', ...' if len(loose) > 3 else ''}); put "
                             f"each class's images in its own sub-folder. Layout:\n{self.PREDICT_LAYOUT}")
        if not query_dir.is_dir():
            raise FileNotFoundError(f"predict_query_dir: directory {query_dir} does not exist; layout:\n"
                                    f"{self.PREDICT_LAYOUT}")
        queries = list_images(query_dir)
        if not queries:
            raise FileNotFoundError(f"predict_query_dir: {query_dir} holds no images "
                                    f"({', '.join(IMAGE_EXTENSIONS)}); layout:\n{self.PREDICT_LAYOUT}")
        files = [f for _, images in classes for f in images]
        labels = [c for c, (_, images) in enumerate(classes) for _ in images]
        names = [name for name, _ in classes]
        unreadable = unreadable_images([*files, *queries])
        if unreadable:  # all of them, before any prediction (a truncated file still fails when decoded)
            raise ImageReadError(f"{len(unreadable)} image(s) in predict_support_dir / predict_query_dir cannot be "
                                 f"read:\n  " + "\n  ".join(unreadable))
        if self.channels == 1:
            warn_colour_images([*files, *queries])
        transform = self.transform("test")
        support = ImageSource(files, labels, dict(enumerate(names)), self.image_size, self.resize, self.channels,
                              transform=transform, invert=self.invert)
        query = ImageSource(queries, [-1] * len(queries), {-1: "?"}, self.image_size, self.resize, self.channels,
                            transform=transform, invert=self.invert)
        return support, query, names

    def predict_dataloader(self) -> DataLoader:
        """Episodes whose support is ``predict_support_dir`` and whose queries are ``predict_query_dir``.

        One episode by default (see ``predict_query_chunk``). ``support_y`` holds each support image's class
        (0..N-1 in sorted folder-name order; classes may have different numbers of images, so read ``support_y``,
        not ``Episode.k_shot``), ``query_y`` is all ``-1`` (unknown), and ``extras`` holds ``class_names`` (list,
        index = label) and ``query_files`` (the path of each query, in ``query_x`` order), so a prediction writer
        can print ``file -> class``.
        """
        support, query, names = self.predict_sources()
        return DataLoader(PredictEpisodes(support, query, names, self.predict_query_chunk), batch_size=None,
                          num_workers=0)
class PredictEpisodes(Dataset):
    """The episodes of `zoo predict`: one fixed support set, the query images in chunks (one chunk by default)."""

    def __init__(self, support: ImageSource, query: ImageSource, class_names: list[str], chunk: int | None = None):
        self.support, self.query, self.class_names = support, query, class_names
        self.chunk = chunk or len(query)
        self._support_x: torch.Tensor | None = None

    def __len__(self) -> int:
        return (len(self.query) + self.chunk - 1) // self.chunk

    def __getitem__(self, index: int) -> Episode:
        if not 0 <= index < len(self):
            raise IndexError(f"predict episode {index} of {len(self)}")
        if self._support_x is None:
            self._support_x = self.support.load_many(torch.arange(len(self.support)))
        items = torch.arange(index * self.chunk, min(len(self.query), (index + 1) * self.chunk))
        return Episode(support_x=self._support_x, support_y=self.support.labels.clone(),
                       query_x=self.query.load_many(items),
                       query_y=torch.full((len(items),), -1, dtype=torch.long),
                       classes=torch.arange(len(self.class_names)), index=index,
                       extras={"class_names": list(self.class_names),
                               "query_files": [self.query.files[i] for i in items.tolist()]})
