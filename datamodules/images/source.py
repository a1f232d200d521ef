"""Image files on the user's disk as uint8 tensors: decoding, the lazily decoding :class:`ImageSource`, and the
listing helpers every image DataModule uses to find its files (class folders, split CSVs, checks of the files).

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
from typing import Any

import numpy as np
import torch

from datamodules.episodes import SPLITS, Source, TensorSource
from datamodules.images.transforms import resize_center_crop

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


def dataset_root(root: str | os.PathLike, what: str, layout: str, must_contain: Sequence[str] = ()) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: data directory {path} does not exist; expected layout:\n{layout}")
    missing = [m for m in must_contain if not (path / m).exists()]
    if missing:
        raise FileNotFoundError(f"{what}: {path} has no {', '.join(missing)}; expected layout:\n{layout}")
    return path


class SplitLists:
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
