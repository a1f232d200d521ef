"""Omniglot from the user's copy of Lake et al.'s release (:class:`OmniglotDataModule`); the small
background sets shipped with the package are in :mod:`datamodules.images.omniglot_small`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datamodules.episodes import SPLITS
from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.source import ImageSource, SplitLists, dataset_root, list_class_folders, list_images


class OmniglotDataModule(ImageEpisodicDataModule):
    """Omniglot (Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through probabilistic program
    induction", Science 2015): 1623 handwritten characters from 50 alphabets, 20 drawings each.

    Layout (the two archives of github.com/brendenlake/omniglot, unzipped; ``root/omniglot-py/`` as torchvision
    leaves it also works)::

        root/images_background/<alphabet>/<character>/*.png   (30 alphabets, 964 characters)
        root/images_evaluation/<alphabet>/<character>/*.png   (20 alphabets, 659 characters)

    Standard split (default, ``split_dir=None``): Lake et al.'s own division by alphabet. Test is the 20
    evaluation alphabets. The 30 background alphabets are for training, except a held-out validation set of the
    last ``val_alphabets`` (default 5) in sorted name order, which for the standard release are
    Ojibwe_(Canadian_Aboriginal_Syllabics), Sanskrit, Syriac_(Estrangelo), Tagalog and Tifinagh (151 characters,
    leaving 813 for training; 659 test characters). Lake et al.
    define no validation set; taking whole alphabets keeps validation as hard as test (unseen alphabets), and
    sorted order makes it the same on every machine.

    ``split_dir`` instead reads ``{train,val,test}.txt`` with one class per line, ``<alphabet>/<character>`` or
    ``<alphabet>/<character>/rot<degrees>``: the format of Snell et al.'s ``data/omniglot/splits/vinyals/`` files,
    i.e. Vinyals et al.'s 1200/423-character split with rotations (Snell et al. hold 172 of the 1200 out for
    validation), the split behind ProtoNet's Omniglot numbers.

    ``rotations=True`` (Vinyals et al., "Matching Networks for One Shot Learning", NeurIPS 2016) makes each
    character at 0, 90, 180 and 270 degrees a class of its own, in every split, as Vinyals et al. and Snell et al.
    do (a rotated character never crosses splits). With ``split_dir`` it expands only lines without a ``rot``.

    Images are inverted by default (``invert=True``: strokes 255, background 0, as Snell et al.'s ``1 - x``) and
    resized to 28x28 grayscale.

    Args:
        root: the folder holding ``images_background/`` and ``images_evaluation/``.
        rotations: rotated copies as new classes (above).
        val_alphabets: how many background alphabets (from the end of the sorted list) form validation.
        split_dir: a folder of Vinyals-style ``{train,val,test}.txt`` class lists (above).
        invert: white strokes on black.
        **kwargs: image and episode arguments of :class:`ImageEpisodicDataModule`.
    """

    layout = ("  root/images_background/<alphabet>/<character>/*.png\n"
              "  root/images_evaluation/<alphabet>/<character>/*.png")
    PARTS = ("images_background", "images_evaluation")

    def __init__(self, root: str, rotations: bool = False, val_alphabets: int = 5, split_dir: str | None = None,
                 invert: bool = True, image_size: int = 28, channels: int = 1, augment_flip: bool = False,
                 **kwargs):
        super().__init__(image_size=image_size, channels=channels, augment_flip=augment_flip, invert=invert,
                         **kwargs)
        if val_alphabets < 1:
            raise ValueError(f"Omniglot: val_alphabets must be >= 1, got {val_alphabets}")
        self.root, self.rotations, self.val_alphabets = root, rotations, val_alphabets
        self.split_dir = split_dir

    def _base(self) -> Path:
        root = dataset_root(self.root, self.name, self.layout)
        for base in (root, root / "omniglot-py"):
            if all((base / p).is_dir() for p in self.PARTS):
                return base
        missing = [p for p in self.PARTS if not (root / p).is_dir()]
        raise FileNotFoundError(f"{self.name}: {root} has no {', '.join(missing)}; expected layout:\n{self.layout}")

    def build_sources(self) -> dict[str, ImageSource]:
        base = self._base()
        angles = (0, 90, 180, 270) if self.rotations else (0,)
        if self.split_dir is None:
            background = sorted(p.name for p in (base / self.PARTS[0]).iterdir() if p.is_dir())
            evaluation = sorted(p.name for p in (base / self.PARTS[1]).iterdir() if p.is_dir())
            if len(background) <= self.val_alphabets:
                raise ValueError(f"{self.name}: {base / self.PARTS[0]} has {len(background)} alphabets; "
                                 f"val_alphabets={self.val_alphabets} would leave none for training")
            if not evaluation:
                raise FileNotFoundError(f"{self.name}: {base / self.PARTS[1]} holds no alphabets; expected "
                                        f"layout:\n{self.layout}")
            cut = len(background) - self.val_alphabets
            plan = {"train": [(self.PARTS[0], a) for a in background[:cut]],
                    "val": [(self.PARTS[0], a) for a in background[cut:]],
                    "test": [(self.PARTS[1], a) for a in evaluation]}
            classes = {split: [c for part, alphabet in alphabets
                               for c in self.alphabet_classes(base / part, alphabet, angles)]
                       for split, alphabets in plan.items()}
        else:
            classes = self._classes_from_split_dir(base, angles)
        lists, names = self.class_lists(classes)
        return self.sources_from_lists(lists, names)

    def alphabet_classes(self, part_dir: Path, alphabet: str, angles: Sequence[int]) -> list[tuple[str, list[Path], int]]:
        """``[(class name, images, angle)]`` of one alphabet folder: each character at each angle is a class."""
        return [(self._class_name(f"{alphabet}/{char}", r, len(angles) > 1), images, r)
                for char, images in list_class_folders(part_dir / alphabet, self.name, self.layout) for r in angles]

    @staticmethod
    def class_lists(classes: dict[str, list[tuple[str, list[Path], int]]]
                    ) -> tuple[dict[str, SplitLists], dict[int, str]]:
        """Per-split file lists and the class names, class ids numbered in split order (train, val, test)."""
        lists = {s: SplitLists() for s in classes}
        names: dict[int, str] = {}
        for split, split_classes in classes.items():
            for name, images, angle in split_classes:
                cid = len(names)
                names[cid] = name
                for f in images:
                    lists[split].add(f, cid, rotation=angle)
        return lists, names

    @staticmethod
    def _class_name(character: str, angle: int, with_rotation: bool) -> str:
        """``Alphabet/characterNN``, with ``/rotDDD`` when rotations make classes (Snell et al.'s naming)."""
        return f"{character}/rot{angle:03d}" if with_rotation else character

    def _classes_from_split_dir(self, base: Path, angles: Sequence[int]) -> dict[str, list]:
        split_dir = Path(self.split_dir).expanduser()
        seen: dict[tuple[str, int], str] = {}
        out: dict[str, list] = {}
        for split in SPLITS:
            path = split_dir / f"{split}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"{self.name}: split file {path} does not exist; split_dir needs "
                                        "{train,val,test}.txt with lines '<alphabet>/<character>[/rot<degrees>]'")
            out[split] = []
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                line = line.strip()
                if not line:
                    continue
                parts = line.split("/")
                rot = None
                if len(parts) == 3 and parts[2].startswith("rot") and parts[2][3:].isdigit():
                    rot = int(parts[2][3:])
                    parts = parts[:2]
                if len(parts) != 2 or rot is not None and rot % 90:
                    raise ValueError(f"{path}:{line_no}: expected '<alphabet>/<character>[/rot<0|90|180|270>]', "
                                     f"got {line!r}")
                folder = next((base / p / parts[0] / parts[1] for p in self.PARTS
                               if (base / p / parts[0] / parts[1]).is_dir()), None)
                if folder is None:
                    raise FileNotFoundError(f"{path}:{line_no}: character {line!r} is in neither "
                                            f"{base / self.PARTS[0]} nor {base / self.PARTS[1]}")
                images = list_images(folder)
                if not images:
                    raise FileNotFoundError(f"{path}:{line_no}: character folder {folder} holds no images")
                for angle in ([rot] if rot is not None else angles):
                    key = (f"{parts[0]}/{parts[1]}", angle)
                    if seen.setdefault(key, split) != split:
                        raise ValueError(f"{path}:{line_no}: {line!r} is also in {seen[key]}.txt; splits must be "
                                         "class-disjoint")
                    out[split].append((self._class_name(key[0], angle, rot is not None or self.rotations),
                                       images, angle))
        return out
