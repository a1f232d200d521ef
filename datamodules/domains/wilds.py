"""A WILDS dataset folder: ``metadata.csv`` plus the images it lists (:class:`WildsMetadataDataModule`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from datamodules.domains.core import DomainSet
from datamodules.domains.base import ImageDomainsDataModule

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


class WildsMetadataDataModule(ImageDomainsDataModule):
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
        image_size, resize, cache: as :class:`DomainBedFolderDataModule` (448 for iWildCam's ResNet-50, 96 for Camelyon17).
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
