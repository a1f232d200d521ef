"""DomainBed's layout, one folder per domain holding one folder per class (:class:`DomainBedFolderDataModule`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from datamodules.domains.core import DomainSet
from datamodules.domains.base import ImageDomainsDataModule, holdout_mask
from datamodules.images.source import list_class_folders


class DomainBedFolderDataModule(ImageDomainsDataModule):
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
