"""Readers for image datasets on the user's disk, and the support/query folders `zoo predict` classifies.

Every reader turns a dataset's own files into three class-disjoint :class:`ImageSource` splits; episodes, fixed
evaluation sets, transforms and caching are shared (:class:`ImageEpisodes`). Nothing here downloads anything: a
reader checks the layout it expects and, when the files are not there, says which layout that is.

Pixels go file -> Pillow -> (optional bounding-box crop, rotation by a multiple of 90 degrees) -> resize of the
shorter side plus centre crop (:func:`datamodules.images.transforms.resize_center_crop`) -> uint8 ``[C, H, W]``. Decoded
images can be cached in one uint8 tensor, after which an episode is a single gather; normalisation and train-time
augmentation run per episode on the whole batch (:class:`datamodules.images.transforms.ImageTransform`).
"""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import EpisodicDataModule
from datamodules.episodes import SPLITS, Episode, Source, TensorSource
from datamodules.images.transforms import (
    GRAY_MEAN,
    GRAY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageTransform,
    resize_center_crop,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

#: ``cache=None`` caches a split when its decoded uint8 tensor is at most this big. 2 GiB holds miniImageNet at
#: 84x84 RGB (60,000 images, 1.27 GB) and every smaller benchmark; tieredImageNet-sized folders stream from disk.
AUTO_CACHE_MAX_BYTES = 2 * 1024**3


class ImageReadError(OSError):
    """An image file that is missing, truncated, corrupt or not an image; the message names the file."""


# ------------------------------------------------------------------------------------------------------------------
# Decoding one image
# ------------------------------------------------------------------------------------------------------------------

_ROTATIONS = {0: None, 90: "ROTATE_90", 180: "ROTATE_180", 270: "ROTATE_270"}


def decode_image(path: str | os.PathLike, channels: int, size: int, resize: int | None = None,
                 bbox: Sequence[float] | None = None, rotation: int = 0, invert: bool = False) -> torch.Tensor:
    """Read one image file into uint8 ``[channels, size, size]``.

    Steps, in order: EXIF orientation applied (phone photos), transparency composited onto white (so a glyph drawn
    on a transparent background is not black on black), conversion to ``L`` (channels 1) or ``RGB`` (channels 3),
    crop to ``bbox = (x, y, width, height)`` in pixels (CUB's ``bounding_boxes.txt`` convention), rotation by
    ``rotation`` degrees counter-clockwise (a multiple of 90, exact: a transpose, no resampling; PIL's ``rotate``
    direction, as Snell et al.'s Omniglot loader), shorter side resized to ``resize`` and centre-cropped to ``size``,
    and ``255 - x`` when ``invert`` (Omniglot: strokes become 1 and background 0, as in Snell et al. 2017).

    Raises:
        ImageReadError: naming ``path``, when the file is missing or Pillow cannot decode all of it.
    """
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if rotation % 360 not in _ROTATIONS:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here and names its path
            img = ImageOps.exif_transpose(opened)
        img = _to_mode(img, channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read image {os.fspath(path)}: {type(e).__name__}: {e}") from e
    if bbox is not None:
        x, y, w, h = (float(v) for v in bbox)
        left, top = max(0, round(x)), max(0, round(y))
        right, bottom = min(img.width, round(x + w)), min(img.height, round(y + h))
        if right - left < 1 or bottom - top < 1:
            raise ValueError(f"bounding box {tuple(bbox)} of {os.fspath(path)} is empty inside its "
                             f"{img.width}x{img.height} image")
        img = img.crop((left, top, right, bottom))
    if rotation % 360:
        img = img.transpose(getattr(Image.Transpose, _ROTATIONS[rotation % 360]))
    img = resize_center_crop(img, size, resize)
    arr = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy shares it
    if invert:
        np.subtract(255, arr, out=arr)
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def _to_mode(img, channels: int):
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit scans (microscopy, medical): keep the top 8 bits; Pillow's own convert("L") would clip at 255.
        img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(16, n))


# ------------------------------------------------------------------------------------------------------------------
# The source
# ------------------------------------------------------------------------------------------------------------------

class ImageSource(Source):
    """Image files with integer class labels, decoded with Pillow.

    ``load(i)`` returns the uint8 ``[C, H, W]`` image ``i``; ``load_many(indices)`` stacks them and applies
    ``transform`` (an :class:`ImageTransform`), which is what an episode holds.

    With ``cache=True`` every image is decoded once, on first use, into one uint8 ``[num_items, C, H, W]`` tensor
    (a thread pool: Pillow releases the GIL while it decodes and resizes) and episodes are then one gather, exactly
    as a :class:`TensorSource`. Cached and uncached loading give identical tensors. Call :meth:`materialize`
    before forking data-loader workers so that they share one cache instead of decoding one each.

    Args:
        files: one path per item.
        labels: one integer class id per item (any ids, e.g. the dataset's own).
        class_names: readable name of each class id.
        image_size: output height and width.
        resize: shorter side before the centre crop; ``None`` means ``image_size``.
        channels: 1 (grayscale, Pillow mode ``L``) or 3 (``RGB``).
        transform: applied by ``load_many`` to the uint8 batch; ``None`` returns uint8.
        cache: decode everything once into memory (see above).
        bboxes: per-item ``(x, y, width, height)`` crop in pixels, or ``None`` for an item without one.
        rotations: per-item rotation in degrees (multiples of 90), e.g. Omniglot's rotated classes.
        invert: ``255 - pixel`` (white-background glyphs to white-on-black).
        num_threads: decoding threads; default the CPUs this process may use (at most 16).
    """

    def __init__(self, files: Sequence[str | os.PathLike], labels: Sequence[int] | torch.Tensor,
                 class_names: dict[int, str] | None, image_size: int, resize: int | None = None, channels: int = 3,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, cache: bool = False,
                 bboxes: Sequence[Sequence[float] | None] | None = None, rotations: Sequence[int] | None = None,
                 invert: bool = False, num_threads: int | None = None):
        self.files = [os.fspath(f) for f in files]
        self.labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if len(self.files) != len(self.labels):
            raise ValueError(f"ImageSource: {len(self.files)} files but {len(self.labels)} labels")
        for what, seq in (("bboxes", bboxes), ("rotations", rotations)):
            if seq is not None and len(seq) != len(self.files):
                raise ValueError(f"ImageSource: {len(self.files)} files but {len(seq)} {what}")
        if channels not in (1, 3):
            raise ValueError(f"ImageSource: channels must be 1 or 3, got {channels}")
        if image_size < 1 or (resize is not None and resize < image_size):
            raise ValueError(f"ImageSource: need image_size >= 1 and resize >= image_size, got {image_size}, {resize}")
        self.class_names = class_names or {int(c): str(int(c)) for c in self.labels.unique()}
        self.image_size, self.resize, self.channels = image_size, resize, channels
        self.transform, self.cache, self.invert = transform, cache, invert
        self.bboxes = list(bboxes) if bboxes is not None else None
        self.rotations = [int(r) for r in rotations] if rotations is not None else None
        self.num_threads = num_threads or _default_threads()
        self._cached: TensorSource | None = None
        self._lock = threading.Lock()

    # Locks do not pickle; data-loader workers started by spawn need to pickle the source.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Size of the decoded uint8 cache."""
        return len(self.files) * self.channels * self.image_size * self.image_size

    @property
    def is_cached(self) -> bool:
        return self._cached is not None

    def decode(self, index: int) -> torch.Tensor:
        """Decode item ``index`` from its file (never from the cache)."""
        return decode_image(self.files[index], self.channels, self.image_size, self.resize,
                            bbox=self.bboxes[index] if self.bboxes is not None else None,
                            rotation=self.rotations[index] if self.rotations is not None else 0,
                            invert=self.invert)

    def decode_many(self, indices: Iterable[int]) -> torch.Tensor:
        """Decode several items (in parallel threads) into one uint8 ``[B, C, H, W]`` tensor."""
        indices = [int(i) for i in indices]
        if not indices:
            return torch.empty((0, self.channels, self.image_size, self.image_size), dtype=torch.uint8)
        threads = min(self.num_threads, len(indices))
        if threads <= 1 or len(indices) < 8:
            images = [self._try_decode(i) for i in indices]
        else:
            # Worker threads return tensors and the calling thread stacks them: threads do not inherit
            # torch.inference_mode, so writing into a tensor made under it (as in `zoo predict`) would fail.
            with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
                images = list(pool.map(self._try_decode, indices, chunksize=max(1, len(indices) // (threads * 8))))
        failed = [e for e in images if isinstance(e, ImageReadError)]
        if len(failed) == 1:
            raise failed[0]
        if failed:  # every unreadable file of the batch, not only the first
            raise ImageReadError(f"{len(failed)} images cannot be read:\n  " + "\n  ".join(map(str, failed)))
        return torch.stack(images)

    def _try_decode(self, index: int) -> torch.Tensor | ImageReadError:
        try:
            return self.decode(index)
        except ImageReadError as err:
            return err

    def materialize(self) -> None:
        """Build the in-memory cache now (no-op unless ``cache=True``, or when it is already built)."""
        if not self.cache or self._cached is not None:
            return
        with self._lock:
            if self._cached is not None:
                return
            start = time.perf_counter()
            data = self.decode_many(range(len(self.files)))
            self._cached = TensorSource(data, self.labels, self.class_names, self.transform)
            log.info("decoded %d images into a %.1f MB cache in %.1f s", len(self.files), data.numel() / 1e6,
                     time.perf_counter() - start)

    def load(self, index: int) -> torch.Tensor:
        """uint8 ``[C, H, W]`` image ``index`` (untransformed)."""
        if self.cache:
            self.materialize()
            return self._cached.data[index]
        return self.decode(index)

    def load_many(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The transformed batch of ``indices``: one gather when cached, parallel decoding otherwise."""
        if self.cache:
            self.materialize()
            return self._cached.load_many(torch.as_tensor(indices, dtype=torch.long))
        x = self.decode_many(torch.as_tensor(indices).tolist())
        return self.transform(x) if self.transform is not None else x


# ------------------------------------------------------------------------------------------------------------------
# Listing files
# ------------------------------------------------------------------------------------------------------------------

def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside ``directory`` (not recursive), sorted by name; hidden files skipped."""
    return sorted(p for p in directory.iterdir() if is_image_file(p))


def list_class_folders(directory: Path, what: str, layout: str) -> list[tuple[str, list[Path]]]:
    """``[(class_name, images)]`` for each sub-folder of ``directory``, in sorted folder-name order.

    Raises with ``what`` (the argument or dataset that named the folder) and ``layout`` when ``directory`` does not
    exist, holds no class folders, or a class folder holds no images.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"{what}: directory {directory} does not exist; expected layout:\n{layout}")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FileNotFoundError(f"{what}: {directory} holds no class folders; expected layout:\n{layout}")
    out = []
    for folder in folders:
        images = list_images(folder)
        if not images:
            raise FileNotFoundError(f"{what}: class folder {folder} holds no images "
                                    f"({', '.join(IMAGE_EXTENSIONS)}); expected layout:\n{layout}")
        out.append((folder.name, images))
    return out


def read_split_csv(path: Path) -> list[tuple[int, str, str]]:
    """Rows ``(line_number, filename, label)`` of a split CSV in the FSL-Loss / Ravi & Larochelle format.

    The format is two columns, ``filename,label``, with the header ``filename,label`` (the header is optional;
    a first row that reads exactly that is skipped). ``label`` is any string (a WordNet id, a class name). Quoted
    fields (class names with commas) are read as CSV; blank lines are skipped.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: naming the file and line of a row that is not two non-empty fields, or a CSV with no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist (expected a CSV with header 'filename,label')")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            fields = [c.strip() for c in row]
            if not fields or all(not c for c in fields):
                continue
            if line_no == 1 and [c.lower() for c in fields] == ["filename", "label"]:
                continue
            if len(fields) != 2 or not fields[0] or not fields[1]:
                raise ValueError(f"{path}:{line_no}: expected two fields 'filename,label', got {row!r}")
            rows.append((line_no, fields[0], fields[1]))
    if not rows:
        raise ValueError(f"split file {path} has no rows (expected a CSV with header 'filename,label')")
    return rows


def resolve_listed_file(filename: str, label: str, bases: Sequence[Path], where: str) -> Path:
    """Find a file a split list names: ``base/filename`` then ``base/label/filename`` for each base, in order.

    The second form covers the copies of miniImageNet and friends that store ``images/<wnid>/<file>`` while the
    split CSV names only ``<file>``. ``where`` (``file:line``) goes into the error.
    """
    p = Path(filename)
    if p.is_absolute():
        if p.is_file():
            return p
        raise FileNotFoundError(f"{where}: image {filename} does not exist")
    tried = []
    for base in bases:
        for candidate in (base / filename, base / label / filename):
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
    raise FileNotFoundError(f"{where}: image {filename!r} not found; looked for: {', '.join(tried)}")


def interleaved_split(names: Iterable[str], counts: Sequence[int], dataset: str = "dataset") -> dict[str, list[str]]:
    """Assign classes to train/val/test with exactly ``counts`` classes each, spread evenly over sorted order.

    Walking the classes in sorted order, each goes to the split furthest behind its share
    (``counts[s] * (i + 1) / total - assigned[s]``, ties to the earlier split). This generalises Chen et al.'s
    modulo rule for CUB to any counts: neighbouring classes in sorted order (WordNet ids and car makes put similar
    classes side by side) are spread over all three splits instead of landing together in one, which a contiguous
    block split would do. It depends on the class names alone: no RNG, no library version.

    Raises:
        ValueError: when the number of classes is not ``sum(counts)``.
    """
    ordered = sorted(names)
    total = sum(counts)
    if len(ordered) != total or len(counts) != len(SPLITS):
        raise ValueError(f"{dataset}: the standard split has {'/'.join(map(str, counts))} classes (total {total}), "
                         f"found {len(ordered)} classes; pass split_dir with train/val/test CSVs to use another split")
    assigned = [0] * len(SPLITS)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, name in enumerate(ordered):
        s = max(range(len(SPLITS)), key=lambda j: (counts[j] * (i + 1) - assigned[j] * total, -j))
        assigned[s] += 1
        out[SPLITS[s]].append(name)
    return out


def _root_dir(root: str | os.PathLike, what: str, layout: str, must_contain: Sequence[str] = ()) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: data directory {path} does not exist; expected layout:\n{layout}")
    missing = [m for m in must_contain if not (path / m).exists()]
    if missing:
        raise FileNotFoundError(f"{what}: {path} has no {', '.join(missing)}; expected layout:\n{layout}")
    return path


class _SplitLists:
    """files, label ids and optional per-item extras of one split, built up by a reader."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.labels: list[int] = []
        self.bboxes: list[Sequence[float] | None] = []
        self.rotations: list[int] = []

    def add(self, file: Path, label: int, bbox: Sequence[float] | None = None, rotation: int = 0) -> None:
        self.files.append(file)
        self.labels.append(label)
        self.bboxes.append(bbox)
        self.rotations.append(rotation)


# ------------------------------------------------------------------------------------------------------------------
# The shared DataModule base
# ------------------------------------------------------------------------------------------------------------------

class ImageEpisodes(EpisodicDataModule):
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

    def sources_from_lists(self, lists: dict[str, _SplitLists], class_names: dict[int, str]) -> dict[str, ImageSource]:
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
        lists = {s: _SplitLists() for s in SPLITS}
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


def unreadable_images(files: Sequence[str | os.PathLike]) -> list[str]:
    """``"<file>: <reason>"`` for each file Pillow cannot open as an image (its header and, where the format has
    them, its chunk checksums: ``Image.verify``); cheap, so `zoo predict` names every bad file before it starts."""
    from PIL import Image

    bad = []
    for f in files:
        try:
            with Image.open(f) as img:
                img.verify()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            bad.append(f"{os.fspath(f)}: {type(err).__name__}: {err}")
    return bad


def warn_colour_images(files: Sequence[str | os.PathLike]) -> list[str]:
    """Warn, naming the files, when images given to a grayscale (``channels=1``) model are in a colour mode.

    They are still converted (to luma, Pillow's ITU-R 601-2 ``convert("L")``) rather than refused: scans and
    screenshots of grayscale material are often saved as RGB, and for those nothing is lost. But a colour photo
    reduced to gray is likely a mistake (the wrong config for the images), so it is said, not done silently. Only
    the file headers are read. Returns the colour files.
    """
    from PIL import Image

    colour = []
    for f in files:
        try:
            with Image.open(f) as img:
                mode = img.mode
        except OSError:
            continue  # decoding it later raises ImageReadError, naming the file
        if mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            colour.append(os.fspath(f))
    if colour:
        shown = ", ".join(colour[:5]) + (f" (and {len(colour) - 5} more)" if len(colour) > 5 else "")
        log.warning("%d image(s) are in colour but the model reads grayscale (channels=1); they are converted to "
                    "gray: %s", len(colour), shown)
    return colour


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


# ------------------------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------------------------

class ImageFolder(ImageEpisodes):
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
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
    """

    layout = "  root/{train,val,test}/<class>/<image>.{png,jpg,jpeg,bmp,gif,webp}"

    def __init__(self, root: str, **kwargs):
        super().__init__(**kwargs)
        self.root = root

    def build_sources(self) -> dict[str, ImageSource]:
        root = _root_dir(self.root, self.name, self.layout, must_contain=SPLITS)
        lists = {s: _SplitLists() for s in SPLITS}
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


class Omniglot(ImageEpisodes):
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
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
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
        root = _root_dir(self.root, self.name, self.layout)
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
                    ) -> tuple[dict[str, _SplitLists], dict[int, str]]:
        """Per-split file lists and the class names, class ids numbered in split order (train, val, test)."""
        lists = {s: _SplitLists() for s in classes}
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


class MiniImageNet(ImageEpisodes):
    """miniImageNet (Vinyals et al., NeurIPS 2016) with Ravi & Larochelle's split ("Optimization as a Model for
    Few-Shot Learning", ICLR 2017): 100 ImageNet classes, 600 images each; 64 train / 16 val / 20 test classes.

    Layout (Ravi & Larochelle's release; the split CSVs name each image and its WordNet id)::

        root/train.csv   root/val.csv   root/test.csv      header 'filename,label', e.g. n0153282900000005.jpg,n01532829
        root/images/<filename>          (or root/images/<label>/<filename>)

    Args:
        root: the folder holding the three CSVs and ``images/``.
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
    """

    layout = ("  root/{train,val,test}.csv   (header 'filename,label')\n"
              "  root/images/<filename>      (or root/images/<label>/<filename>)")

    def __init__(self, root: str, **kwargs):
        super().__init__(**kwargs)
        self.root = root

    def build_sources(self) -> dict[str, ImageSource]:
        root = _root_dir(self.root, self.name, self.layout,
                         must_contain=("images", "train.csv", "val.csv", "test.csv"))
        return self.sources_from_split_dir(root, bases=[root / "images"])


class CUB(ImageEpisodes):
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
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
    """

    layout = ("  root/images.txt, root/image_class_labels.txt, root/classes.txt, root/bounding_boxes.txt\n"
              "  root/images/<NNN.class_name>/*.jpg")

    def __init__(self, root: str, split_dir: str | None = None, crop_to_bbox: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.split_dir, self.crop_to_bbox = root, split_dir, crop_to_bbox

    def _base(self) -> Path:
        root = _root_dir(self.root, self.name, self.layout)
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
        lists = {s: _SplitLists() for s in SPLITS}
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


class StanfordDogs(ImageEpisodes):
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
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
    """

    layout = "  root/Images/<wnid>-<breed>/*.jpg"
    SPLIT_COUNTS = (70, 20, 30)

    def __init__(self, root: str, split_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.root, self.split_dir = root, split_dir

    def build_sources(self) -> dict[str, ImageSource]:
        root = _root_dir(self.root, self.name, self.layout)
        if self.split_dir is not None:
            return self.sources_from_split_dir(self.split_dir, bases=[root / "Images", root])
        folders = dict(list_class_folders(root / "Images", self.name, self.layout))
        split = interleaved_split(folders, self.SPLIT_COUNTS, self.name)
        ids = {name: i for i, name in enumerate(sorted(folders))}
        lists = {s: _SplitLists() for s in SPLITS}
        for s in SPLITS:
            for name in split[s]:
                for f in folders[name]:
                    lists[s].add(f, ids[name])
        return self.sources_from_lists(lists, {i: name for name, i in ids.items()})


class StanfordCars(ImageEpisodes):
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
        **kwargs: image and episode arguments of :class:`ImageEpisodes`.
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
        root = _root_dir(self.root, self.name, self.layout)
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
        lists = {s: _SplitLists() for s in SPLITS}
        for s in SPLITS:
            for name in split[s]:
                for f in sorted(by_class[name]):
                    lists[s].add(f, ids[name], boxes.get(f) if self.crop_to_bbox else None)
        return self.sources_from_lists(lists, {i: name for name, i in ids.items()})


__all__ = ["AUTO_CACHE_MAX_BYTES", "CUB", "IMAGE_EXTENSIONS", "ImageEpisodes", "ImageFolder", "ImageReadError",
           "ImageSource", "MiniImageNet", "Omniglot", "PredictEpisodes", "StanfordCars", "StanfordDogs",
           "decode_image", "interleaved_split", "list_class_folders", "list_images", "read_split_csv",
           "resolve_listed_file"]
