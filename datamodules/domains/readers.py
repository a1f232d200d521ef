"""Readers for the layouts domain-shift users already have: DomainBed folders and WILDS ``metadata.csv`` files.

Both read images lazily with Pillow (:class:`~datamodules.images.readers.ImageSource`; decoded once into memory
when the split fits in ``AUTO_CACHE_MAX_BYTES``), normalised with ImageNet statistics, and hand the shared layer a
:class:`~datamodules.domains.core.DomainSet`. Nothing is downloaded.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from datamodules.domains.base import DomainDataModule
from datamodules.domains.core import DomainSet
from datamodules.images.readers import AUTO_CACHE_MAX_BYTES, ImageSource, list_class_folders
from datamodules.images.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform


class _ImageDomains(DomainDataModule):
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


class DomainBedFolder(_ImageDomains):
    """A DomainBed dataset folder, ``root/<domain>/<class>/<image>``: PACS, OfficeHome, VLCS, TerraIncognita,
    DomainNet (as DomainBed's ``download.py`` leaves them), with leave-one-domain-out.

    Args:
        root: the dataset folder (``.../PACS``); one sub-folder per domain, each with one sub-folder per class.
        test_domains: the held-out target domain(s), by folder name (leave-one-domain-out: one name).
        val_domains: target-like domains for model selection, disjoint from both; empty (default) selects on
            ``holdout_fraction`` of the training domains' items instead (DomainBed's training-domain validation).
        holdout_fraction: share of each training domain's items held out (validation when ``val_domains`` is
            empty, and the ``in_domain`` split); 0.2 as DomainBed.
        image_size, resize: shorter side resized to ``resize`` (default ``image_size``), centre-cropped to
            ``image_size`` (224 for ImageNet backbones).
        cache: decode every image once into memory; ``None``: when the dataset fits in 2 GiB decoded.
        support_size ... num_workers: see :class:`~datamodules.domains.base.DomainDataModule`.

    Every domain must have the same class folders: the setting shares one label space, and a class missing from a
    domain is an error naming the class and the domains that lack it.
    """

    layout: ClassVar[str] = "  root/<domain>/<class>/<image>.{png,jpg,jpeg,bmp,gif,webp}   (e.g. PACS/photo/dog/x.jpg)"

    def __init__(self, root: str, test_domains: list[str], val_domains: list[str] | None = None,
                 holdout_fraction: float = 0.2, image_size: int = 224, resize: int | None = None,
                 cache: bool | None = None, support_size: int = 24, query_size: int = 16, groups_per_batch: int = 1,
                 train_batches: int = 100, eval_batch_size: int | None = None, super_domains: int = 2,
                 super_domain_method: str = "random", test_split: str = "test", seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(image_size=image_size, resize=resize, cache=cache, support_size=support_size,
                         query_size=query_size, groups_per_batch=groups_per_batch, train_batches=train_batches,
                         eval_batch_size=eval_batch_size, super_domains=super_domains,
                         super_domain_method=super_domain_method, test_split=test_split, seed=seed,
                         eval_seed=eval_seed, num_workers=num_workers)
        if not test_domains:
            raise ValueError(f"{self.name}: test_domains must name at least one domain folder")
        if not 0 <= holdout_fraction < 1:
            raise ValueError(f"{self.name}: holdout_fraction must be in [0, 1), got {holdout_fraction}")
        self.root, self.test_domains = root, list(test_domains)
        self.val_domains, self.holdout_fraction = list(val_domains or []), holdout_fraction

    def build_domains(self) -> DomainSet:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name}: root {root} does not exist; expected layout:\n{self.layout}")
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(names) < 2:
            raise FileNotFoundError(f"{self.name}: {root} holds {len(names)} domain folder(s), need at least 2; "
                                    f"expected layout:\n{self.layout}")
        for arg, wanted in (("test_domains", self.test_domains), ("val_domains", self.val_domains)):
            unknown = [d for d in wanted if d not in names]
            if unknown:
                raise ValueError(f"{self.name}: {arg} {unknown} are not domain folders of {root}; found {names}")
        folders = {d: dict(list_class_folders(root / d, f"{self.name} domain {d!r}", self.layout)) for d in names}
        all_classes = sorted(set().union(*folders.values()))
        missing = {c: [d for d in names if c not in folders[d]] for c in all_classes}
        missing = {c: ds for c, ds in missing.items() if ds}
        if missing:
            shown = "; ".join(f"class {c!r} is missing from {ds}" for c, ds in list(missing.items())[:10])
            raise ValueError(f"{self.name}: the domains of {root} do not share their classes ({len(missing)} "
                             f"class(es) are not in every domain): {shown}")
        files, labels, domains = [], [], []
        for di, d in enumerate(names):
            for ci, c in enumerate(all_classes):
                for f in folders[d][c]:
                    files.append(f)
                    labels.append(ci)
                    domains.append(di)
        domains_t = torch.tensor(domains)
        test = [names.index(d) for d in self.test_domains]
        val = [names.index(d) for d in self.val_domains]
        train = [i for i in range(len(names)) if i not in test and i not in val]
        if not train:
            raise ValueError(f"{self.name}: no training domain is left after test_domains and val_domains")
        holdout = holdout_mask(domains_t, train, self.holdout_fraction, self.seed)
        class_names = dict(enumerate(all_classes))
        return DomainSet(self.image_source(files, labels, class_names), domains_t, names, class_names,
                         {"train": train, "val": val, "test": test}, in_domain=holdout, name=self.name)


#: The WILDS datasets' ``metadata.csv`` conventions (WILDS 2.0 file layout): the domain field Meta-DMoE's experts
#: split by (its spec, section 1.3), the label column, the image path, and the official splits.
WILDS_PRESETS: dict[str, dict[str, Any]] = {
    # iWildCam 2020-WILDS: split column holds train / val / test (out-of-distribution) and id_val / id_test.
    "iwildcam": {"metadata": "metadata.csv", "domain_column": "location_remapped", "label_column": "y",
                 "path": "train/{filename}", "split_column": "split",
                 "splits": {"train": ["train"], "val": ["val"], "test": ["test"], "in_domain": ["id_test"]}},
    # Camelyon17-WILDS: the official split is by hospital: train centres 0, 3, 4; validation 1; test 2; within the
    # training centres the `split` column marks 1 for the in-distribution validation patches.
    "camelyon17": {"metadata": "metadata.csv", "domain_column": "slide", "label_column": "tumor",
                   "path": "patches/patient_{patient:03d}_node_{node}/patch_patient_{patient:03d}_node_{node}_"
                           "x_{x_coord}_y_{y_coord}.png",
                   "split_column": "center", "splits": {"train": ["0", "3", "4"], "val": ["1"], "test": ["2"]},
                   "in_domain": {"column": "split", "value": "1"}},
    # RxRx1-WILDS: the `dataset` column holds train / val / test; domains are experiments (batches).
    "rxrx1": {"metadata": "metadata.csv", "domain_column": "experiment", "label_column": "sirna_id",
              "path": "images/{experiment}/Plate{plate}/{well}_s{site}.png", "split_column": "dataset",
              "splits": {"train": ["train"], "val": ["val"], "test": ["test"]}},
}


def _int_if_possible(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return value
        return int(f) if f.is_integer() else f


class WildsMetadata(_ImageDomains):
    """A WILDS dataset folder: ``root/metadata.csv`` plus the images it lists (iWildCam, Camelyon17, RxRx1 as
    presets; any other dataset of that shape through the column arguments).

    Args:
        root: the dataset folder (``.../iwildcam_v2.0``).
        dataset: a key of ``WILDS_PRESETS`` (``"iwildcam"``, ``"camelyon17"``, ``"rxrx1"``) or ``None`` to give
            every field below.
        metadata, domain_column, label_column, path, split_column, splits: override the preset: the CSV file name
            under ``root``; the column whose value is an item's domain (iWildCam ``location_remapped``, Camelyon17
            ``slide``, RxRx1 ``experiment``); the class column; the image path under ``root`` as a ``str.format``
            template over the row's columns (integer-valued columns are ints, so ``{patient:03d}`` works); the
            column that decides the split; ``{split: [values of split_column]}`` for ``train``, ``val``, ``test``
            and optionally ``in_domain``.
        image_size, resize, cache: as :class:`DomainBedFolder` (448 for iWildCam's ResNet-50, 96 for Camelyon17).
        support_size ... num_workers: see :class:`~datamodules.domains.base.DomainDataModule`.
    """

    def __init__(self, root: str, dataset: str | None = "iwildcam", metadata: str | None = None,
                 domain_column: str | None = None, label_column: str | None = None, path: str | None = None,
                 split_column: str | None = None, splits: dict[str, list[str]] | None = None,
                 image_size: int = 224, resize: int | None = None, cache: bool | None = None,
                 support_size: int = 24, query_size: int = 16, groups_per_batch: int = 1, train_batches: int = 100,
                 eval_batch_size: int | None = None, super_domains: int = 10, super_domain_method: str = "random",
                 test_split: str = "test", seed: int = 0, eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(image_size=image_size, resize=resize, cache=cache, support_size=support_size,
                         query_size=query_size, groups_per_batch=groups_per_batch, train_batches=train_batches,
                         eval_batch_size=eval_batch_size, super_domains=super_domains,
                         super_domain_method=super_domain_method, test_split=test_split, seed=seed,
                         eval_seed=eval_seed, num_workers=num_workers)
        if dataset is not None and dataset not in WILDS_PRESETS:
            raise ValueError(f"{self.name}: dataset must be one of {sorted(WILDS_PRESETS)} or null, got {dataset!r}")
        preset = dict(WILDS_PRESETS.get(dataset, {}))
        given = {"metadata": metadata, "domain_column": domain_column, "label_column": label_column, "path": path,
                 "split_column": split_column, "splits": splits}
        preset.update({k: v for k, v in given.items() if v is not None})
        missing = [k for k in given if k not in preset]
        if missing:
            raise ValueError(f"{self.name}: without a dataset preset, give {missing}")
        for s in ("train", "val", "test"):
            if s not in preset["splits"]:
                raise ValueError(f"{self.name}: splits must map 'train', 'val' and 'test' to values of "
                                 f"{preset['split_column']!r}; {s!r} is missing")
        self.root, self.dataset, self.spec = root, dataset, preset

    def read_rows(self) -> tuple[Path, list[dict[str, str]]]:
        """The metadata rows, after checking that every column the reader needs is there (naming those missing)."""
        path = Path(self.root).expanduser() / self.spec["metadata"]
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: no metadata file {path} (WILDS layout: root/metadata.csv and the "
                                    "images it lists)")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
        needed = {"domain_column": self.spec["domain_column"], "label_column": self.spec["label_column"],
                  "split_column": self.spec["split_column"]}
        if "in_domain" in self.spec:
            needed["in_domain column"] = self.spec["in_domain"]["column"]
        for what, column in needed.items():
            if column not in columns:
                raise ValueError(f"{path}: has no column {column!r} (the {what} of "
                                 f"{self.dataset or 'this dataset'}); its columns are {columns}")
        import string

        for _, field, _, _ in string.Formatter().parse(self.spec["path"]):
            if field and field not in columns:
                raise ValueError(f"{path}: has no column {field!r}, which the image path template "
                                 f"{self.spec['path']!r} needs; its columns are {columns}")
        if not rows:
            raise ValueError(f"{path}: no rows")
        return path, rows

    def build_domains(self) -> DomainSet:
        path, rows = self.read_rows()
        spec = self.spec
        split_of_value = {str(v): s for s, values in spec["splits"].items() for v in values}
        base = path.parent
        keep = [r for r in rows if split_of_value.get(_norm(r[spec["split_column"]])) is not None]
        if not keep:
            raise ValueError(f"{path}: no row's {spec['split_column']!r} is one of {sorted(split_of_value)}")
        labels_raw = sorted({_int_if_possible(r[spec["label_column"]]) for r in keep}, key=lambda v: (str(type(v)), v))
        # Integer labels keep their own ids (iWildCam's y is 0..181 whatever a split holds); others are numbered.
        numeric = all(isinstance(v, int) and v >= 0 for v in labels_raw)
        label_id = {v: (v if numeric else i) for i, v in enumerate(labels_raw)}
        domain_raw = sorted({_int_if_possible(r[spec["domain_column"]]) for r in keep}, key=lambda v: (str(type(v)), v))
        domain_id = {v: i for i, v in enumerate(domain_raw)}
        files, labels, domains, split_of_domain, in_domain = [], [], [], {}, []
        for r in keep:
            split = split_of_value[_norm(r[spec["split_column"]])]
            d = domain_id[_int_if_possible(r[spec["domain_column"]])]
            held = split == "in_domain" or ("in_domain" in spec and split == "train"
                                             and _norm(r[spec["in_domain"]["column"]]) == spec["in_domain"]["value"])
            home = "train" if split == "in_domain" else split
            if split_of_domain.setdefault(d, home) != home:
                raise ValueError(f"{path}: domain {spec['domain_column']}={domain_raw[d]} appears in both the "
                                 f"{split_of_domain[d]} and the {home} split; WILDS' domain splits are disjoint")
            fields = {k: _int_if_possible(v) for k, v in r.items()}
            files.append(base / spec["path"].format(**fields))
            labels.append(label_id[_int_if_possible(r[spec["label_column"]])])
            domains.append(d)
            in_domain.append(held)
        split_domains = {s: sorted(d for d, h in split_of_domain.items() if h == s) for s in ("train", "val", "test")}
        class_names = {label_id[v]: str(v) for v in labels_raw}
        names = [f"{spec['domain_column']}={v}" for v in domain_raw]
        return DomainSet(self.image_source(files, labels, class_names), torch.tensor(domains), names, class_names,
                         split_domains, in_domain=torch.tensor(in_domain), name=self.name)


def _norm(value: str) -> str:
    """A split value as compared with ``splits``: ``"1.0"`` and ``"1"`` agree (pandas writes floats)."""
    v = _int_if_possible(value.strip())
    return str(v)


