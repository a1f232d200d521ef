"""Your own images, one folder per class and per split (:class:`ImageFolderDataModule`)."""

from __future__ import annotations

from datamodules.episodes import SPLITS
from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.source import ImageSource, SplitLists, dataset_root, list_class_folders


class ImageFolderDataModule(ImageEpisodicDataModule):
    """Your own images, one folder per class, with the class split made by the folders.

    Layout::

        root/train/<class>/*.{png,jpg,jpeg,bmp,gif,webp}
        root/val/<class>/*
        root/test/<class>/*

    Class ids run over train, then val, then test classes, each in sorted folder-name order. A class name may
    appear in one split only (few-shot splits are class-disjoint). The split is whatever the folders say; for a
    published benchmark, use its reader below so the standard split is applied.

    Args:
        root: the folder holding ``train/``, ``val/`` and ``test/``.
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = "  root/{train,val,test}/<class>/<image>.{png,jpg,jpeg,bmp,gif,webp}"

    def __init__(self, root: str, **kwargs):
        super().__init__(**kwargs)
        self.root = root

    def build_sources(self) -> dict[str, ImageSource]:
        root = dataset_root(self.root, self.name, self.layout, must_contain=SPLITS)
        lists = {s: SplitLists() for s in SPLITS}
        names: dict[int, str] = {}
        seen: dict[str, str] = {}
        for split in SPLITS:
            for name, images in list_class_folders(root / split, f"{self.name} [{split}]", self.layout):
                if seen.setdefault(name, split) != split:
                    raise ValueError(f"{self.name}: class {name!r} is in both {root / seen[name]} and "
                                     f"{root / split}; few-shot splits must be class-disjoint")
                cid = len(names)
                names[cid] = name
                for f in images:
                    lists[split].add(f, cid)
        return self.sources_from_lists(lists, names)
