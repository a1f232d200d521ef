"""Relation episodes with none-of-the-above (NOTA) queries, on the one :class:`~datamodules.episodes.Episode` type.

An N-way K-shot relation episode with NOTA has N + 1 labels: ``0..N-1`` for the support relations and ``N`` for a
query whose relation is none of them. Support items come class-major as everywhere else; known queries come
class-major and NOTA queries last (D-Proto sorts them so), so ``query_y == n_way`` marks the NOTA queries.

Two protocols, chosen by ``protocol``:

* ``"dproto"`` (D-Proto, Pisces-29/DProto, EMNLP Findings 2023; the protocol of the 0.15 / 0.30 / 0.50 NOTA rates):
  the episode has ``N * Q`` queries in total; each is NOTA with probability ``na_rate`` (a float in [0, 1)), its
  instance drawn from a relation outside the episode's N, otherwise it belongs to a uniformly drawn one of the N.
  A query that would repeat a support item (or an earlier query) is drawn again among the unused instances.
* ``"thunlp"`` (thunlp/FewRel ``fewshot_re_kit/data_loader.py``): Q queries per support relation plus
  ``int(na_rate * Q)`` NOTA queries, ``na_rate`` a non-negative integer ratio (1, 2, 5 give about 15, 30 and 50%
  NOTA in 5-way 1-query episodes).

The draw is a pure function of ``(seed, split, epoch, index)`` like every episode here; the fixed evaluation sets
of different NOTA rates share their keys, so they hold the same support sets and differ only in their queries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from datamodules.episodes import Episode, EpisodeDataset, Source, episode_generator

PROTOCOLS = ("dproto", "thunlp")


def check_na_rate(na_rate: float, protocol: str = "dproto", arg: str = "na_rate") -> float:
    """Raise naming ``arg`` unless ``na_rate`` is valid for ``protocol``; return it."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"NOTA protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if isinstance(na_rate, bool) or not isinstance(na_rate, (int, float)):
        raise ValueError(f"{arg} must be a number, got {na_rate!r}")
    if protocol == "dproto" and not 0 <= na_rate < 1:
        raise ValueError(f"{arg} must be in [0, 1) (the probability that a query is NOTA, D-Proto protocol), "
                         f"got {na_rate}")
    if protocol == "thunlp" and (na_rate < 0 or float(na_rate) != int(na_rate)):
        raise ValueError(f"{arg} must be a non-negative integer under the thunlp protocol (NOTA queries = "
                         f"na_rate * q_query), got {na_rate}")
    return na_rate


class NotaEpisodeDataset(EpisodeDataset):
    """N-way K-shot episodes whose queries include NOTA instances (label ``n_way``); see the module docstring.

    Args:
        na_rate: probability that a query is NOTA (``dproto``) or NOTA queries per ``q_query`` (``thunlp``).
        protocol: ``"dproto"`` or ``"thunlp"``.
        other arguments: as :class:`~datamodules.episodes.EpisodeDataset` (its constructor checks that every
            relation holds ``k_shot + q_query`` instances and names the ones that do not).
    """

    def __init__(self, source: Source, n_way: int, k_shot: int, q_query: int, seed: int, split: str,
                 na_rate: float = 0.0, protocol: str = "dproto", name: str = "dataset",
                 extras_fn: Callable[[Source, torch.Tensor, torch.Tensor], dict] | None = None):
        check_na_rate(na_rate, protocol)
        super().__init__(source, n_way, k_shot, q_query, seed, split, name, extras_fn)
        self.na_rate, self.protocol = na_rate, protocol
        if na_rate > 0 and len(self.class_ids) <= n_way:
            raise ValueError(f"{name} [{split}]: NOTA queries need relations outside the episode's {n_way}, but the "
                             f"split has only {len(self.class_ids)} relations")

    def _items_of(self, c: int) -> torch.Tensor:
        start = int(self._starts[c])
        return self._sorted[start: start + int(self._counts[c])]

    def draw_nota(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item indices (support, then known queries class-major, then NOTA queries), the class positions of the
        N support relations, and the query labels (``n_way`` = NOTA)."""
        g = episode_generator(self.seed, self.split, epoch, index)
        perm = torch.randperm(len(self.class_ids), generator=g)
        classes, outside = perm[: self.n_way], perm[self.n_way:]
        used: set[int] = set()
        support = []
        for c in classes.tolist():
            items = self._items_of(c)
            picks = items[torch.randperm(len(items), generator=g)[: self.k_shot]]
            support.append(picks)
            used.update(picks.tolist())
        if self.protocol == "dproto":
            total = self.n_way * self.q_query
            is_nota = torch.rand(total, generator=g) < self.na_rate
            which = torch.randint(self.n_way, (total,), generator=g)
            labels = torch.where(is_nota, torch.full_like(which, self.n_way), which)
        else:
            n_na = int(self.na_rate * self.q_query)
            labels = torch.cat([torch.arange(self.n_way).repeat_interleave(self.q_query),
                                torch.full((n_na,), self.n_way)])
        queries = []
        for label in labels.tolist():
            c = int(classes[label]) if label < self.n_way else int(outside[torch.randint(len(outside), (1,),
                                                                                          generator=g)])
            items = self._items_of(c)
            free = items[torch.tensor([int(i) not in used for i in items])]
            if len(free) == 0:  # the episode drew this relation more often than it has instances
                name = self.source.class_names.get(int(self.class_ids[c]), str(int(self.class_ids[c])))
                raise ValueError(f"relation {name!r} has {len(items)} instances, too few for the queries an "
                                 f"episode drew from it; lower q_query or k_shot")
            pick = int(free[torch.randint(len(free), (1,), generator=g)])
            used.add(pick)
            queries.append(pick)
        order = torch.argsort(labels, stable=True)  # known queries class-major, NOTA last
        items = torch.cat([torch.cat(support), torch.tensor(queries, dtype=torch.long)[order]])
        return items, classes, labels[order]

    def draw(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item indices and class positions of the episode (what episode-set fingerprints read), NOTA included."""
        return self.draw_nota(epoch, index)[:2]

    def __getitem__(self, key: tuple[int, int] | list[tuple[int, int]]) -> Episode:
        if isinstance(key, list):
            raise TypeError("NOTA episodes have varying query counts and cannot be stacked: use "
                            "episodes_per_batch: 1")
        epoch, index = key
        items, classes, query_y = self.draw_nota(epoch, index)
        x = self.source.load_many(items)
        n_support = self.n_way * self.k_shot
        extras = self.extras_fn(self.source, items, classes) if self.extras_fn is not None else {}
        return Episode(support_x=x[:n_support], support_y=torch.arange(self.n_way).repeat_interleave(self.k_shot),
                       query_x=x[n_support:], query_y=query_y, classes=self.class_ids[classes], index=index,
                       extras=extras)
