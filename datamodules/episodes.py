"""The one Episode type and the one episode sampler every episodic system uses.

An episode is a pure function of ``(seed, split, epoch, index)``: the generator that draws it is keyed on those
four numbers alone. That gives three properties the peers lack:

* the same seed gives the same episodes, whatever the number of data-loader workers;
* validation and test episodes (epoch fixed at 0) are one fixed set per seed, so two runs or two methods are
  compared on the very same episodes;
* under DDP, rank ``r`` of ``W`` takes episodes ``r, r + W, r + 2W, ...``: ranks see distinct episodes, the same
  number of them, and together exactly the episodes a single process would see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

SPLITS = ("train", "val", "test")


@dataclass
class Episode:
    """One N-way K-shot Q-query task.

    Support items come class-major (all K shots of class 0, then class 1, ...), and so do query items. Labels are
    episode-local, ``0..N-1``; ``classes[j]`` is the dataset's own class id of local label ``j``.

    Inputs are tensors for images (``[N*K, C, H, W]``) and lists of strings (or any per-item objects) for text;
    Lightning moves the tensors to the device and leaves the rest alone. ``extras`` holds what one method needs
    and others ignore (NOTA masks, entity spans, domain ids).

    A *batched* episode (``episodes_per_batch`` > 1, see :func:`collate_episodes`) holds B episodes of the same
    setting stacked along a leading dimension: ``support_x [B, N*K, ...]``, labels ``[B, N*K]`` / ``[B, N*Q]``,
    ``classes [B, N]``, ``index`` a ``[B]`` tensor. ``unbatch()`` gives the B episodes back.
    """

    support_x: Any
    support_y: torch.Tensor
    query_x: Any
    query_y: torch.Tensor
    classes: torch.Tensor
    index: int = -1
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def batched(self) -> bool:
        return self.support_y.dim() == 2

    @property
    def n_way(self) -> int:
        return int(self.classes.shape[-1])

    @property
    def k_shot(self) -> int:
        return int(self.support_y.shape[-1]) // self.n_way

    @property
    def q_query(self) -> int:
        return int(self.query_y.shape[-1]) // self.n_way

    def unbatch(self) -> list[Episode]:
        """The episodes of a batched episode, in order (a one-element list for an unbatched one)."""
        if not self.batched:
            return [self]
        return [Episode(self.support_x[b], self.support_y[b], self.query_x[b], self.query_y[b], self.classes[b],
                        index=int(self.index[b]), extras={k: v[b] for k, v in self.extras.items()})
                for b in range(len(self.support_y))]

    def pin_memory(self) -> Episode:
        """Called by DataLoader(pin_memory=True); pins every tensor field."""
        return _map_tensors(self, lambda t: t.pin_memory())

    def to(self, device: torch.device | str) -> Episode:
        return _map_tensors(self, lambda t: t.to(device))

    def clone(self) -> Episode:
        """A copy with every tensor cloned (e.g. ordinary tensors from ones made under ``torch.inference_mode``)."""
        return _map_tensors(self, lambda t: t.clone())


def _map_tensors(ep: Episode, fn: Callable[[torch.Tensor], torch.Tensor]) -> Episode:
    def conv(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return fn(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return dataclasses.replace(ep, **{f.name: conv(getattr(ep, f.name)) for f in dataclasses.fields(ep)})


def collate_episodes(episodes: Sequence[Episode]) -> Episode:
    """Stack episodes of one setting into a batched :class:`Episode` (leading dimension B), so a method can
    compute all of them in one pass. Inputs must be tensors; extras are stacked key by key.
    """
    first = episodes[0]
    if not isinstance(first.support_x, torch.Tensor):
        raise TypeError(f"episodes_per_batch > 1 needs tensor inputs; this dataset's items are "
                        f"{type(first.support_x).__name__} (use episodes_per_batch: 1)")
    shapes = {(tuple(e.support_x.shape), tuple(e.query_x.shape), e.n_way) for e in episodes}
    if len(shapes) > 1:
        raise ValueError(f"collate_episodes: episodes of different settings cannot be stacked: {sorted(shapes)}")
    return Episode(
        support_x=torch.stack([e.support_x for e in episodes]), support_y=torch.stack([e.support_y for e in episodes]),
        query_x=torch.stack([e.query_x for e in episodes]), query_y=torch.stack([e.query_y for e in episodes]),
        classes=torch.stack([e.classes for e in episodes]), index=torch.tensor([e.index for e in episodes]),
        extras={k: torch.stack([torch.as_tensor(e.extras[k]) for e in episodes]) for k in first.extras})


class Source:
    """What a dataset must provide: the class label of each item and a way to load one item.

    Sources are thin on purpose. Splitting, episode sampling, caching and collation are shared code; a new
    dataset only lists its items. ``labels`` are integers (any ids; they need not be contiguous) and
    ``class_names`` maps them to readable names for tables and predictions.
    """

    labels: torch.Tensor  # [num_items] int64
    class_names: dict[int, str]

    def __len__(self) -> int:
        return int(self.labels.numel())

    def load(self, index: int) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def load_many(self, indices: torch.Tensor) -> Any:
        """Load several items at once; the result is what ``Episode.support_x`` holds.

        The default stacks tensors and returns other items as a list. In-memory sources override this with one
        gather, which is what makes the sampler fast.
        """
        items = [self.load(int(i)) for i in indices]
        if items and isinstance(items[0], torch.Tensor):
            return torch.stack(items)
        return items


class TensorSource(Source):
    """Items held in one tensor in memory (e.g. uint8 images); ``transform`` runs on the gathered batch."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor, class_names: dict[int, str] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if len(data) != len(labels):
            raise ValueError(f"TensorSource: {len(data)} items but {len(labels)} labels")
        self.data = data
        self.labels = labels.long()
        self.class_names = class_names or {int(c): str(int(c)) for c in labels.unique()}
        self.transform = transform

    def load(self, index: int) -> torch.Tensor:
        return self.load_many(torch.tensor([index]))[0]

    def load_many(self, indices: torch.Tensor) -> torch.Tensor:
        x = self.data[indices]
        return self.transform(x) if self.transform is not None else x


class ListSource(Source):
    """Items held in a Python list in memory (e.g. texts); ``load_many`` returns a list."""

    def __init__(self, items: Sequence[Any], labels: torch.Tensor, class_names: dict[int, str] | None = None):
        if len(items) != len(labels):
            raise ValueError(f"ListSource: {len(items)} items but {len(labels)} labels")
        self.items = list(items)
        self.labels = labels.long()
        self.class_names = class_names or {int(c): str(int(c)) for c in labels.unique()}

    def load(self, index: int) -> Any:
        return self.items[index]

    def load_many(self, indices: torch.Tensor) -> list[Any]:
        return [self.items[int(i)] for i in indices]


def episode_generator(seed: int, split: str, epoch: int, index: int) -> torch.Generator:
    """The generator that draws episode ``index`` of ``epoch`` in ``split``: a pure function of its key.

    The key is hashed (not added) so that neighbouring seeds or indices give unrelated streams.
    """
    key = f"{seed}/{split}/{epoch}/{index}".encode()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little"))


class EpisodeDataset(Dataset):
    """Map-style dataset whose item ``(epoch, index)`` is one whole, collated :class:`Episode`.

    Drawing: ``n_way`` classes uniformly without replacement, then ``k_shot + q_query`` distinct items of each.
    Every class must hold at least ``k_shot + q_query`` items; the constructor checks this and names the classes
    that do not, so the error comes at set-up and not in the middle of an epoch.
    """

    def __init__(self, source: Source, n_way: int, k_shot: int, q_query: int, seed: int, split: str,
                 name: str = "dataset", extras_fn: Callable[[Source, torch.Tensor, torch.Tensor], dict] | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for arg, value in (("n_way", n_way), ("k_shot", k_shot), ("q_query", q_query)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be >= 1, got {value}")
        self.source, self.n_way, self.k_shot, self.q_query = source, n_way, k_shot, q_query
        self.seed, self.split, self.extras_fn = seed, split, extras_fn
        labels = source.labels
        self.class_ids, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        order = torch.argsort(inverse, stable=True)
        # items_of[c] = indices of class c, as slices into one sorted array: no per-class Python lists.
        self._sorted = order
        self._starts = torch.cumsum(counts, 0) - counts
        self._counts = counts
        need = k_shot + q_query
        short = [(source.class_names.get(int(c), str(int(c))), int(n))
                 for c, n in zip(self.class_ids, counts) if n < need]
        if short:
            shown = ", ".join(f"{name!r} has {n}" for name, n in short[:10])
            more = f" (and {len(short) - 10} more)" if len(short) > 10 else ""
            raise ValueError(f"{name} [{split}]: {k_shot}-shot {q_query}-query episodes need {need} items per class, "
                             f"but {len(short)} classes have fewer: {shown}{more}")
        if len(self.class_ids) < n_way:
            raise ValueError(f"{name} [{split}]: {n_way}-way episodes need {n_way} classes, "
                             f"the split has {len(self.class_ids)}")

    def __len__(self) -> int:  # the sampler decides how many episodes an epoch has
        raise TypeError("EpisodeDataset is indexed by (epoch, index) keys from EpisodeSampler")

    def draw(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item indices of the episode (support then query, each class-major) and the chosen class positions."""
        g = episode_generator(self.seed, self.split, epoch, index)
        classes = torch.randperm(len(self.class_ids), generator=g)[: self.n_way]
        need = self.k_shot + self.q_query
        picks = []
        for c in classes.tolist():
            pos = torch.randperm(int(self._counts[c]), generator=g)[:need] + self._starts[c]
            picks.append(self._sorted[pos])
        picks = torch.stack(picks)  # [N, K+Q]
        order = torch.cat([picks[:, : self.k_shot].reshape(-1), picks[:, self.k_shot:].reshape(-1)])
        return order, classes

    def __getitem__(self, key: tuple[int, int] | list[tuple[int, int]]) -> Episode:
        if isinstance(key, list):  # a meta-batch of keys from EpisodeSampler(episodes_per_batch > 1)
            return collate_episodes([self[k] for k in key])
        epoch, index = key
        items, classes = self.draw(epoch, index)
        x = self.source.load_many(items)
        n_support = self.n_way * self.k_shot
        local = torch.arange(self.n_way)
        extras = self.extras_fn(self.source, items, classes) if self.extras_fn is not None else {}
        return Episode(
            support_x=x[:n_support],
            support_y=local.repeat_interleave(self.k_shot),
            query_x=x[n_support:],
            query_y=local.repeat_interleave(self.q_query),
            classes=self.class_ids[classes],
            index=index,
            extras=extras,
        )


class EpisodeSampler(DistributedSampler):
    """Yields the ``(epoch, index)`` keys of this rank's episodes.

    Subclassing ``DistributedSampler`` is what tells Lightning to keep this sampler under DDP (instead of
    wrapping the dataset in its own) and to call ``set_epoch`` on it; rank and world size come from the trainer.
    Rank ``r`` takes indices ``r, r+W, ...`` of ``ceil(num_episodes / W) * W`` so all ranks get the same count;
    evaluation code drops the few padded duplicates by episode index before computing a confidence interval.

    With ``episodes_per_batch`` B > 1 it yields lists of up to B consecutive keys of this rank (the last may be
    shorter): the striping of episodes over ranks is the one above, only grouped.
    """

    def __init__(self, num_episodes: int, rank: int = 0, world_size: int = 1, fixed_epoch: int | None = None,
                 episodes_per_batch: int = 1):
        # DistributedSampler.__init__ would need a dataset and a process group; we need neither.
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if episodes_per_batch < 1:
            raise ValueError(f"episodes_per_batch must be >= 1, got {episodes_per_batch}")
        self.episodes_per_batch = episodes_per_batch
        self.num_episodes, self.rank, self.num_replicas = num_episodes, rank, world_size
        self.fixed_epoch = fixed_epoch
        self.epoch = 0
        self.num_samples = math.ceil(num_episodes / world_size)
        self.total_size = self.num_samples * world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.episodes_per_batch)

    def keys(self) -> Iterator[tuple[int, int]]:
        """This rank's ``(epoch, index)`` keys, one per episode."""
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        for i in range(self.rank, self.total_size, self.num_replicas):
            yield epoch, i % self.num_episodes

    def __iter__(self) -> Iterator[tuple[int, int] | list[tuple[int, int]]]:
        if self.episodes_per_batch == 1:
            yield from self.keys()
            return
        keys = list(self.keys())
        for start in range(0, len(keys), self.episodes_per_batch):
            yield keys[start: start + self.episodes_per_batch]
