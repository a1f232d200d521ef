"""miniImageNet with Ravi & Larochelle's split CSVs (:class:`MiniImageNetDataModule`)."""

from __future__ import annotations

from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.source import ImageSource, dataset_root


class MiniImageNetDataModule(ImageEpisodicDataModule):
    """miniImageNet (Vinyals et al., NeurIPS 2016) with Ravi & Larochelle's split ("Optimization as a Model for
    Few-Shot Learning", ICLR 2017): 100 ImageNet classes, 600 images each; 64 train / 16 val / 20 test classes.

    Layout (Ravi & Larochelle's release; the split CSVs name each image and its WordNet id)::

        root/train.csv   root/val.csv   root/test.csv      header 'filename,label', e.g. n0153282900000005.jpg,n01532829
        root/images/<filename>          (or root/images/<label>/<filename>)

    Args:
        root: the folder holding the three CSVs and ``images/``.
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = ("  root/{train,val,test}.csv   (header 'filename,label')\n"
              "  root/images/<filename>      (or root/images/<label>/<filename>)")

    def __init__(self, root: str, **kwargs):
        super().__init__(**kwargs)
        self.root = root

    def build_sources(self) -> dict[str, ImageSource]:
        root = dataset_root(self.root, self.name, self.layout,
                         must_contain=("images", "train.csv", "val.csv", "test.csv"))
        return self.sources_from_split_dir(root, bases=[root / "images"])
