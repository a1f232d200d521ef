"""The two Stanford fine-grained sets, Stanford Dogs and Stanford Cars, split by class
(:class:`StanfordDogsDataModule`, :class:`StanfordCarsDataModule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.episodes import SPLITS
from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.source import ImageSource, SplitLists, dataset_root, interleaved_split, list_class_folders


class StanfordDogsDataModule(ImageEpisodicDataModule):
    """Stanford Dogs (Khosla et al., "Novel Dataset for Fine-Grained Image Categorization", FGVC 2011): 120
    breeds, 20,580 images.

    Layout (the official ``images.tar``)::

        root/Images/<wnid>-<breed>/*.jpg     e.g. Images/n02085620-Chihuahua/n02085620_10074.jpg

    Few-shot split (default): 70 train / 20 val / 30 test breeds, the sizes of Li et al. ("Revisiting Local
    Descriptor based Image-to-Class Measure for Few-shot Learning", DN4, CVPR 2019), whose own assignment was
    random and is not part of the dataset. Here the breeds, in sorted folder-name (WordNet id) order, are dealt
    to the splits by :func:`interleaved_split`: deterministic, and neighbouring (related) breeds do not all land in
    one split. Pass ``split_dir`` (``{train,val,test}.csv``, ``filename,label`` with filenames relative to
    ``Images/``) to use a published assignment such as DN4's or FSL-Loss's.

    Args:
        root: the folder holding ``Images/``.
        split_dir: optional folder of split CSVs overriding the standard split.
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = "  root/Images/<wnid>-<breed>/*.jpg"
    SPLIT_COUNTS = (70, 20, 30)

    def __init__(self, root: str, split_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.root, self.split_dir = root, split_dir

    def build_sources(self) -> dict[str, ImageSource]:
        root = dataset_root(self.root, self.name, self.layout)
        if self.split_dir is not None:
            return self.sources_from_split_dir(self.split_dir, bases=[root / "Images", root])
        folders = dict(list_class_folders(root / "Images", self.name, self.layout))
        split = interleaved_split(folders, self.SPLIT_COUNTS, self.name)
        ids = {name: i for i, name in enumerate(sorted(folders))}
        lists = {s: SplitLists() for s in SPLITS}
        for s in SPLITS:
            for name in split[s]:
                for f in folders[name]:
                    lists[s].add(f, ids[name])
        return self.sources_from_lists(lists, {i: name for name, i in ids.items()})


class StanfordCarsDataModule(ImageEpisodicDataModule):
    """Stanford Cars (Krause et al., "3D Object Representations for Fine-Grained Categorization", 3dRR 2013):
    196 make/model/year classes, 16,185 images.

    Two layouts are read; the train/test halves of the classification benchmark are pooled (few-shot splits
    divide classes, not images)::

        folder layout (the common Kaggle copy):
          root/car_data/{train,test}/<class name>/*.jpg        (root may also be car_data/ itself)
        official devkit layout:
          root/cars_train/*.jpg   root/cars_test/*.jpg
          root/devkit/cars_meta.mat   root/devkit/cars_train_annos.mat
          root/cars_test_annos_withlabels.mat                   (or root/devkit/cars_test_annos_withlabels.mat)

    The devkit's ``.mat`` files are read with ``scipy.io.loadmat`` (scipy comes with scikit-learn).

    Few-shot split (default): 130 train / 17 val / 49 test classes, the sizes of Li et al. (DN4, CVPR 2019), whose
    own random assignment is not part of the dataset. The classes, in sorted order of their names (with ``/``
    written ``-``, as the folder copy must write it, so that both layouts give the same split), are dealt to the
    splits by :func:`interleaved_split`. ``split_dir`` (``{train,val,test}.csv``, ``filename,label``) overrides it;
    filenames are looked up under ``root``, ``car_data/``, ``cars_train/``, ``cars_test/`` and ``images/``.

    ``crop_to_bbox`` (devkit layout only, which has the boxes) crops each car to its annotated box.

    Args:
        root: the dataset folder (either layout).
        split_dir: optional folder of split CSVs overriding the standard split.
        crop_to_bbox: crop to the car's bounding box first (devkit layout).
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = ("  root/car_data/{train,test}/<class name>/*.jpg\n"
              "or the devkit layout:\n"
              "  root/cars_train/*.jpg, root/cars_test/*.jpg, root/devkit/cars_meta.mat,\n"
              "  root/devkit/cars_train_annos.mat, root/cars_test_annos_withlabels.mat")
    SPLIT_COUNTS = (130, 17, 49)

    def __init__(self, root: str, split_dir: str | None = None, crop_to_bbox: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.split_dir, self.crop_to_bbox = root, split_dir, crop_to_bbox

    @staticmethod
    def class_key(name: str) -> str:
        return name.replace("/", "-").strip()

    def _folder_base(self, root: Path) -> Path | None:
        for base in (root / "car_data", root):
            if (base / "train").is_dir() and (base / "test").is_dir():
                return base
        return None

    def _devkit(self, root: Path) -> tuple[dict[str, list[Path]], dict[Path, list[float]]]:
        try:
            from scipy.io import loadmat
        except ImportError as e:  # pragma: no cover - scipy ships with scikit-learn
            raise ImportError("StanfordCars: reading the devkit .mat files needs scipy (pip install scipy); or use "
                              "the car_data/{train,test}/<class>/ folder layout") from e

        def load(path: Path, key: str) -> np.ndarray:
            try:
                return np.atleast_1d(loadmat(path, squeeze_me=True)[key])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ValueError(f"StanfordCars: cannot read {key!r} from {path}: {type(e).__name__}: {e}") from e

        meta = root / "devkit" / "cars_meta.mat"
        test_annos = next((p for p in (root / "cars_test_annos_withlabels.mat",
                                       root / "devkit" / "cars_test_annos_withlabels.mat") if p.is_file()), None)
        needed = [meta, root / "devkit" / "cars_train_annos.mat", root / "cars_train", root / "cars_test"]
        missing = [str(p) for p in needed if not p.exists()] + ([] if test_annos else
                                                               [str(root / "cars_test_annos_withlabels.mat")])
        if missing:
            raise FileNotFoundError(f"{self.name}: {root} is neither layout: missing {', '.join(missing)}; "
                                    f"expected:\n{self.layout}")
        names = [self.class_key(str(n)) for n in load(meta, "class_names")]
        by_class: dict[str, list[Path]] = {n: [] for n in names}
        boxes: dict[Path, list[float]] = {}
        for annos_path, image_dir in ((root / "devkit" / "cars_train_annos.mat", root / "cars_train"),
                                      (test_annos, root / "cars_test")):
            annos = load(annos_path, "annotations")
            fields = annos.dtype.names or ()
            if not {"fname", "class", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"} <= set(fields):
                raise ValueError(f"{annos_path}: annotations need fields fname, class, bbox_x1..bbox_y2; got "
                                 f"{fields} (the devkit's cars_test_annos.mat has no labels: use "
                                 "cars_test_annos_withlabels.mat)")
            for a in annos:
                cls = int(a["class"])
                if not 1 <= cls <= len(names):
                    raise ValueError(f"{annos_path}: image {a['fname']} has class {cls}, outside 1..{len(names)}")
                path = image_dir / str(a["fname"])
                if not path.is_file():
                    raise FileNotFoundError(f"{annos_path}: lists {a['fname']}, but {path} does not exist")
                x1, y1, x2, y2 = (float(a[k]) for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"))
                by_class[names[cls - 1]].append(path)
                boxes[path] = [x1, y1, x2 - x1 + 1, y2 - y1 + 1]  # inclusive pixel corners -> x, y, w, h
        return by_class, boxes

    def build_sources(self) -> dict[str, ImageSource]:
        root = dataset_root(self.root, self.name, self.layout)
        if self.split_dir is not None:
            bbox_of = None
            if self.crop_to_bbox:
                _, boxes = self._devkit(root)
                resolved = {p.resolve(): b for p, b in boxes.items()}
                def bbox_of(p: Path) -> Sequence[float] | None:
                    return resolved.get(p.resolve())
            bases = [root, root / "car_data", root / "cars_train", root / "cars_test", root / "images"]
            return self.sources_from_split_dir(self.split_dir, bases=bases, bbox_of=bbox_of)
        folder_base = self._folder_base(root)
        boxes: dict[Path, list[float]] = {}
        if folder_base is not None:
            if self.crop_to_bbox:
                raise ValueError(f"{self.name}: crop_to_bbox needs the devkit layout (the boxes are in its .mat "
                                 f"files); {folder_base} is the folder layout")
            by_class: dict[str, list[Path]] = {}
            for half in ("train", "test"):
                for name, images in list_class_folders(folder_base / half, self.name, self.layout):
                    by_class.setdefault(self.class_key(name), []).extend(images)
        else:
            by_class, boxes = self._devkit(root)
        empty = [n for n, files in by_class.items() if not files]
        if empty:
            raise FileNotFoundError(f"{self.name}: classes with no images: {empty[:5]}")
        split = interleaved_split(by_class, self.SPLIT_COUNTS, self.name)
        ids = {name: i for i, name in enumerate(sorted(by_class))}
        lists = {s: SplitLists() for s in SPLITS}
        for s in SPLITS:
            for name in split[s]:
                for f in sorted(by_class[name]):
                    lists[s].add(f, ids[name], boxes.get(f) if self.crop_to_bbox else None)
        return self.sources_from_lists(lists, {i: name for name, i in ids.items()})
