"""Caltech-UCSD Birds-200-2011 with the standard few-shot class split (:class:`CUBDataModule`)."""

from __future__ import annotations

from pathlib import Path

from datamodules.episodes import SPLITS
from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.source import ImageSource, SplitLists, dataset_root


class CUBDataModule(ImageEpisodicDataModule):
    """Caltech-UCSD Birds-200-2011 (Wah et al., 2011): 200 bird species, 11,788 images, with bounding boxes.

    Layout (the official ``CUB_200_2011.tgz``; ``root`` may also be the folder that holds ``CUB_200_2011/``)::

        root/images.txt               <image_id> <path under images/>
        root/image_class_labels.txt   <image_id> <class_id 1..200>
        root/classes.txt              <class_id> <class_name>, e.g. '1 001.Black_footed_Albatross'
        root/bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (needed for crop_to_bbox)
        root/images/<class_name>/*.jpg

    Standard few-shot split (default): 100 train / 50 val / 50 test classes, the split of Hilliard et al.
    ("Few-Shot Learning with Metric-Agnostic Conditional Embeddings", 2018) as Chen et al. ("A Closer Look at
    Few-shot Classification", ICLR 2019) write it in ``filelists/CUB/write_CUB_filelist.py``: with ``i`` the
    0-based index of a class in sorted class-folder order, train is ``i % 2 == 0``, val ``i % 4 == 1`` and test
    ``i % 4 == 3``. Class folders are named ``NNN.<name>`` with the id zero-padded, so sorted folder order is
    ``classes.txt`` order; this reader uses ``classes.txt`` and its ids (0-based) as the dataset's class ids.

    ``split_dir`` instead reads ``{train,val,test}.csv`` (``filename,label``, FSL-Loss format; filenames relative
    to ``images/``), e.g. the 130/20/50 split of Li et al. (DN4, CVPR 2019) that some papers use.

    ``crop_to_bbox`` crops each image to its ``bounding_boxes.txt`` box before resizing. FSL-Loss's CUB loader
    "assume[s] the cub images are cropped based on the given bounding boxes", so its configs turn this on; Chen et
    al. use the whole image, hence the default ``False``.

    Args:
        root: the ``CUB_200_2011`` folder.
        split_dir: optional folder of split CSVs overriding the standard split.
        crop_to_bbox: crop to the bird's bounding box first.
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = ("  root/images.txt, root/image_class_labels.txt, root/classes.txt, root/bounding_boxes.txt\n"
              "  root/images/<NNN.class_name>/*.jpg")

    def __init__(self, root: str, split_dir: str | None = None, crop_to_bbox: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.split_dir, self.crop_to_bbox = root, split_dir, crop_to_bbox

    def _base(self) -> Path:
        root = dataset_root(self.root, self.name, self.layout)
        if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
            root = root / "CUB_200_2011"
        return root

    @staticmethod
    def _table(path: Path, columns: int, layout: str) -> dict[int, list[str]]:
        """``{id: [fields]}`` of a CUB metadata file (``<id> <field> ...``, space separated)."""
        if not path.is_file():
            raise FileNotFoundError(f"CUB: {path} does not exist; expected layout:\n{layout}")
        out = {}
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=columns - 1)
            if len(fields) != columns or not fields[0].isdigit():
                raise ValueError(f"{path}:{line_no}: expected '<id>' and {columns - 1} more field(s), got {line!r}")
            out[int(fields[0])] = fields[1:]
        return out

    def build_sources(self) -> dict[str, ImageSource]:
        root = self._base()
        images = self._table(root / "images.txt", 2, self.layout)
        boxes: dict[int, list[float]] = {}
        if self.crop_to_bbox:
            for image_id, fields in self._table(root / "bounding_boxes.txt", 5, self.layout).items():
                try:
                    boxes[image_id] = [float(v) for v in fields]
                except ValueError:
                    raise ValueError(f"{root / 'bounding_boxes.txt'}: image {image_id} has a non-numeric box "
                                     f"{fields}") from None
        if self.split_dir is not None:
            box_by_path = {(root / "images" / rel[0]).resolve(): boxes.get(i) for i, rel in images.items()}
            bbox_of = (lambda p: box_by_path.get(p.resolve())) if self.crop_to_bbox else None
            return self.sources_from_split_dir(self.split_dir, bases=[root / "images", root], bbox_of=bbox_of)
        classes = self._table(root / "classes.txt", 2, self.layout)
        labels = self._table(root / "image_class_labels.txt", 2, self.layout)
        order = sorted(classes)  # class ids 1..200; position i is Chen et al.'s index
        index_of = {cid: i for i, cid in enumerate(order)}
        split_of = {i: "train" if i % 2 == 0 else "val" if i % 4 == 1 else "test" for i in range(len(order))}
        lists = {s: SplitLists() for s in SPLITS}
        for image_id, (rel,) in sorted(images.items()):
            if image_id not in labels:
                raise ValueError(f"{root / 'image_class_labels.txt'}: no class for image {image_id} ({rel})")
            cid = int(labels[image_id][0])
            if cid not in index_of:
                raise ValueError(f"{root / 'image_class_labels.txt'}: image {image_id} has class {cid}, which "
                                 f"{root / 'classes.txt'} does not list")
            path = root / "images" / rel
            if not path.is_file():
                raise FileNotFoundError(f"{root / 'images.txt'}: image {image_id} is {path}, which does not exist")
            if self.crop_to_bbox and image_id not in boxes:
                raise ValueError(f"{root / 'bounding_boxes.txt'}: no box for image {image_id} ({rel})")
            i = index_of[cid]
            lists[split_of[i]].add(path, i, boxes.get(image_id))
        names = {index_of[cid]: fields[0] for cid, fields in classes.items()}
        return self.sources_from_lists(lists, names)
