"""The domain-shift data layer: items with a domain id, single-domain support/query batches, domain-disjoint
splits, a per-domain sequential loader for test-time adaptation, and the experts' super-domains.

The setting (Meta-DMoE, Zhong et al. 2022, section 3; WILDS): labelled *source* domains and unlabelled *target*
domains sharing one label space. A dataset is a :class:`DomainSet`: one :class:`~datamodules.episodes.Source`
(labels, ``load_many``) whose items also carry a domain id, and which domains are train / val / test. Everything
else is shared here:

* training batches (:class:`DomainBatches`): ``groups_per_batch`` groups, each drawn from **one** domain chosen
  uniformly over the training domains (WILDS' group loader with ``uniform_over_groups=True``), split into an
  unlabelled support (first ``support_size`` items) and a labelled query; every batch is a pure function of
  ``(seed, epoch, index)`` like an episode;
* evaluation (:class:`DomainSequence`): each target domain's items in a fixed order, cut into batches of
  ``batch_size`` that never span two domains; the first batch of a domain is flagged, it is the unlabelled batch
  a test-time-adaptation method adapts on (Meta-DMoE section 5.1: a sequential loader with batch size = support
  size, the first batch adapts, every batch is predicted). Under DDP whole domains are striped over ranks;
* super-domains (:func:`super_domains`): the official code's "clustering" of training domains into one group per
  expert is a seeded random partition (``method="random"``, the default); ``method="kmeans"`` is the paper's
  similarity-based clustering, on per-domain feature vectors (:func:`domain_statistics`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from datamodules.episodes import SPLITS, Source

#: Splits a :class:`DomainSet` may define: the three of every data module, plus ``in_domain`` (held-out items of
#: the training domains, to measure the in-domain -> held-out drop).
DOMAIN_SPLITS = (*SPLITS, "in_domain")


@dataclass
class DomainSet:
    """Everything a domain dataset provides.

    Attributes:
        source: the items (``labels`` [M], ``load_many(indices)`` -> a transformed batch).
        domains: [M] int64 domain id of each item, in ``0..len(domain_names)-1``.
        domain_names: readable name of each domain id (``"DejaVuSans/blur"``, ``"location 17"``).
        class_names: readable name of each label.
        split_domains: ``split -> domain ids`` for ``train``, ``val``, ``test``; the three must be disjoint.
        in_domain: [M] bool, items of training domains held out of training (evaluated as the ``in_domain`` split);
            ``None`` when the dataset holds none back.
        name: for error messages.
    """

    source: Source
    domains: torch.Tensor
    domain_names: list[str]
    class_names: dict[int, str]
    split_domains: dict[str, list[int]]
    in_domain: torch.Tensor | None = None
    name: str = "domains"
    _items: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.domains = torch.as_tensor(self.domains, dtype=torch.long).reshape(-1)
        if self.in_domain is not None:
            self.in_domain = torch.as_tensor(self.in_domain, dtype=torch.bool).reshape(-1)
            if len(self.in_domain) != len(self.domains):
                raise ValueError(f"{self.name}: {len(self.domains)} items but {len(self.in_domain)} in_domain flags")
        if len(self.domains) != len(self.source):
            raise ValueError(f"{self.name}: {len(self.source)} items but {len(self.domains)} domain ids")
        missing = [s for s in SPLITS if s not in self.split_domains]
        if missing:
            raise ValueError(f"{self.name}: no domains for split(s) {missing}")
        check_disjoint(self.split_domains, self.domain_names, self.name)
        for split, ids in self.split_domains.items():
            # No validation domains is allowed when training domains hold items back: validation then selects on
            # those (DomainBed's training-domain validation).
            if not ids and not (split == "val" and self.in_domain is not None and bool(self.in_domain.any())):
                raise ValueError(f"{self.name}: the {split} split has no domains")
            bad = [d for d in ids if not 0 <= d < len(self.domain_names)]
            if bad:
                raise ValueError(f"{self.name}: {split} domain ids {bad} are outside 0..{len(self.domain_names) - 1}")
        if self.in_domain is not None:
            train = torch.isin(self.domains, torch.tensor(self.split_domains["train"]))
            if bool((self.in_domain & ~train).any()):
                raise ValueError(f"{self.name}: in_domain marks items outside the training domains")

    def splits(self) -> tuple[str, ...]:
        return DOMAIN_SPLITS if self.in_domain is not None and bool(self.in_domain.any()) else SPLITS

    def domain_ids(self, split: str) -> list[int]:
        """The domains of ``split`` (``in_domain``: the training domains)."""
        if split not in self.splits():
            raise ValueError(f"{self.name}: no split {split!r}; this dataset has {list(self.splits())}")
        return list(self.split_domains["train" if split == "in_domain" else split])

    def items(self, split: str, domain: int) -> torch.Tensor:
        """Indices of the items of ``domain`` used in ``split``, in dataset order (the sequential order)."""
        key = (split, domain)
        if key not in self._items:
            mask = self.domains == domain
            if self.in_domain is not None and split in ("train", "in_domain"):
                mask &= self.in_domain if split == "in_domain" else ~self.in_domain
            self._items[key] = torch.nonzero(mask).squeeze(1)
        return self._items[key]

    def check_sizes(self, split: str, need: int, what: str) -> None:
        """Every domain of ``split`` must hold ``need`` items; the error names the domains that do not."""
        short = [(self.domain_names[d], len(self.items(split, d))) for d in self.domain_ids(split)
                 if len(self.items(split, d)) < need]
        if short:
            shown = ", ".join(f"{n!r} has {k}" for n, k in short[:10])
            more = f" (and {len(short) - 10} more)" if len(short) > 10 else ""
            raise ValueError(f"{self.name} [{split}]: {what} needs {need} items per domain, but {len(short)} "
                             f"domain(s) have fewer: {shown}{more}")


def check_disjoint(split_domains: dict[str, Sequence[int]], domain_names: Sequence[str], name: str) -> None:
    """Train, val and test must share no domain (the setting's source/target disjointness); names the overlap."""
    seen: dict[int, str] = {}
    for split in SPLITS:
        for d in split_domains.get(split, ()):
            if d in seen and seen[d] != split:
                raise ValueError(f"{name}: domain {domain_names[d]!r} is in both the {seen[d]} and the {split} "
                                 "split; source and target domains must be disjoint")
            seen[d] = split


def domain_generator(seed: int, split: str, epoch: int, index: int) -> torch.Generator:
    """The generator of batch ``index`` of ``epoch``: a pure function of its key (hashed, as episodes are)."""
    key = f"domains/{seed}/{split}/{epoch}/{index}".encode()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little"))


# ---------------------------------------------------------------------------------------------------------------
# Training batches: groups of single-domain support + query
# ---------------------------------------------------------------------------------------------------------------
class DomainBatches(Dataset):
    """Map-style dataset whose item ``(epoch, index)`` is one training batch of ``groups_per_batch`` groups.

    A group is one domain (uniform over the split's domains, with replacement across groups, as WILDS' group
    sampler) and ``support_size + query_size`` distinct items of it drawn uniformly. The batch is a dict:
    ``support_x [G, S, ...]``, ``support_y [G, S]`` (labels of the support; Meta-DMoE's meta-distillation never
    reads them, supervised stages do), ``query_x [G, Q, ...]``, ``query_y [G, Q]``, ``domain [G]``, ``expert [G]``
    (the super-domain of the group's domain, ``-1`` when none is given) and ``index``.
    """

    def __init__(self, data: DomainSet, split: str, support_size: int, query_size: int, groups_per_batch: int,
                 seed: int, expert_of_domain: dict[int, int] | None = None):
        for arg, value in (("support_size", support_size), ("query_size", query_size),
                           ("groups_per_batch", groups_per_batch)):
            if int(value) < 1:
                raise ValueError(f"DomainBatches: {arg} must be >= 1, got {value}")
        data.check_sizes(split, support_size + query_size, f"a support of {support_size} + a query of {query_size}")
        self.data, self.split, self.seed = data, split, seed
        self.support_size, self.query_size, self.groups = support_size, query_size, groups_per_batch
        self.domain_list = data.domain_ids(split)
        self.expert_of_domain = expert_of_domain or {}

    def __len__(self) -> int:
        raise TypeError("DomainBatches is indexed by (epoch, index) keys from EpisodeSampler")

    def draw(self, epoch: int, index: int) -> tuple[list[int], torch.Tensor]:
        """The groups' domains and their item indices ``[G, S + Q]`` (support first)."""
        g = domain_generator(self.seed, self.split, epoch, index)
        picks = torch.randint(len(self.domain_list), (self.groups,), generator=g).tolist()
        domains = [self.domain_list[p] for p in picks]
        need = self.support_size + self.query_size
        rows = []
        for d in domains:
            items = self.data.items(self.split, d)
            rows.append(items[torch.randperm(len(items), generator=g)[:need]])
        return domains, torch.stack(rows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        domains, rows = self.draw(epoch, index)
        flat = rows.reshape(-1)
        x = self.data.source.load_many(flat)
        x = x.reshape(self.groups, -1, *x.shape[1:])
        y = self.data.source.labels[flat].reshape(self.groups, -1)
        s = self.support_size
        return {"support_x": x[:, :s], "support_y": y[:, :s], "query_x": x[:, s:], "query_y": y[:, s:],
                "domain": torch.tensor(domains),
                "expert": torch.tensor([self.expert_of_domain.get(d, -1) for d in domains]),
                "index": torch.tensor(index)}


# ---------------------------------------------------------------------------------------------------------------
# Evaluation: each domain in order, in batches that never span two domains
# ---------------------------------------------------------------------------------------------------------------
class DomainSequence(Dataset):
    """Item ``i`` is the ``i``-th batch of the sequential evaluation of a split's domains.

    Domain ``k`` of the split (in the split's order) is cut, in dataset order, into batches of ``batch_size`` (the
    last one may be shorter). A batch is a dict ``x``, ``y``, ``domain`` (its id), ``domain_index`` (``k``, the
    item index :meth:`zoo.training.base.ZooModule.report_items` keys the per-domain results by), ``first`` (True for a
    domain's first batch: the unlabelled adaptation batch) and ``last``.
    """

    def __init__(self, data: DomainSet, split: str, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"DomainSequence: batch_size must be >= 1, got {batch_size}")
        data.check_sizes(split, batch_size, f"test-time adaptation on a first batch of {batch_size}")
        self.data, self.split, self.batch_size = data, split, batch_size
        self.domain_list = data.domain_ids(split)
        self.batches: list[tuple[int, int, int]] = []  # (domain position, start, stop)
        self.batches_of: list[list[int]] = []  # domain position -> its batch numbers
        for k, d in enumerate(self.domain_list):
            n = len(data.items(split, d))
            own = []
            for start in range(0, n, batch_size):
                own.append(len(self.batches))
                self.batches.append((k, start, min(n, start + batch_size)))
            self.batches_of.append(own)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, start, stop = self.batches[i]
        d = self.domain_list[k]
        items = self.data.items(self.split, d)[start:stop]
        return {"x": self.data.source.load_many(items), "y": self.data.source.labels[items],
                "domain": torch.tensor(d), "domain_index": torch.tensor(k), "first": torch.tensor(start == 0),
                "last": torch.tensor(stop == len(self.data.items(self.split, d)))}


class DomainStripeSampler(DistributedSampler):
    """The batch numbers of this rank's domains: rank ``r`` of ``W`` takes domains ``r, r + W, ...`` whole.

    Every rank gets ``ceil(M / W)`` domains (a short rank repeats domains from the start of the list, which
    ``report_items`` drops by domain index), so the per-domain results gather with equal shapes.
    """

    def __init__(self, sequence: DomainSequence, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.sequence, self.rank, self.num_replicas = sequence, rank, world_size
        m = len(sequence.batches_of)
        self.domains = [(self.rank + j * world_size) % m for j in range(math.ceil(m / world_size))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(self.sequence.batches_of[k]) for k in self.domains)

    def __iter__(self) -> Iterator[int]:
        for k in self.domains:
            yield from self.sequence.batches_of[k]


# ---------------------------------------------------------------------------------------------------------------
# Super-domains: which training domains each expert learns from
# ---------------------------------------------------------------------------------------------------------------
def super_domains(domain_ids: Sequence[int], n: int, seed: int, method: str = "random",
                  features: torch.Tensor | None = None) -> dict[int, int]:
    """``{domain id: expert index}`` grouping the training domains into ``n`` super-domains.

    ``"random"`` (default) is the official code's ``split_domains``: the domain ids shuffled by a seeded generator
    and cut into ``n`` contiguous chunks of near-equal size (``np.array_split``; the official code cuts
    ``len // n`` per chunk with the same effect up to where the remainder goes). ``"kmeans"`` is the paper's
    similarity clustering (section 5.1 says "clustered"): seeded k-means++ then Lloyd iterations on ``features``
    (``[len(domain_ids), f]``, e.g. :func:`domain_statistics`); a cluster left empty takes the domain farthest
    from its centre, so every expert has data.
    """
    ids = [int(d) for d in domain_ids]
    if not 1 <= n <= len(ids):
        raise ValueError(f"super_domains: need 1 <= n <= {len(ids)} training domains, got n={n}")
    rng = np.random.default_rng(seed)
    if method == "random":
        order = rng.permutation(len(ids))
        return {ids[i]: e for e, chunk in enumerate(np.array_split(order, n)) for i in chunk.tolist()}
    if method != "kmeans":
        raise ValueError(f"super_domains: method must be 'random' or 'kmeans', got {method!r}")
    if features is None or len(features) != len(ids):
        raise ValueError(f"super_domains: method 'kmeans' needs one feature row per domain ({len(ids)}), got "
                         f"{None if features is None else len(features)}")
    x = np.asarray(features, dtype=np.float64).reshape(len(ids), -1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, n):  # k-means++ seeding
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(x))])
    c = np.stack(centres)
    assign = np.zeros(len(x), dtype=np.int64)
    for _ in range(100):
        dist = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        assign = dist.argmin(1)
        for k in range(n):
            if not (assign == k).any():  # an empty cluster takes the worst-fitted domain
                far = int(dist[np.arange(len(x)), assign].argmax())
                assign[far] = k
        new = np.stack([x[assign == k].mean(0) for k in range(n)])
        if np.allclose(new, c):
            break
        c = new
    return {ids[i]: int(assign[i]) for i in range(len(ids))}


def domain_statistics(data: DomainSet, split: str = "train", max_items: int = 64, pool: int = 7) -> torch.Tensor:
    """One feature row per domain of ``split`` for k-means super-domains: the domain's mean image average-pooled
    to ``pool x pool`` per channel, then its per-channel pixel standard deviation (style: contrast, blur, noise).

    Reads at most the first ``max_items`` items of each domain (the clustering needs a summary, not every image).
    """
    rows = []
    for d in data.domain_ids(split):
        x = data.source.load_many(data.items(split, d)[:max_items]).float()
        mean = torch.nn.functional.adaptive_avg_pool2d(x.mean(0, keepdim=True), pool).flatten()
        rows.append(torch.cat([mean, x.transpose(0, 1).flatten(1).std(1)]))
    return torch.stack(rows)
