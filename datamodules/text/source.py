"""Texts as a :class:`~datamodules.episodes.Source`: plain strings with labels and per-item ``fields`` (the tokens
and entity spans of a relation instance), what a reader returns (:class:`TextRecords`), and the checks and
class split every text reader shares.

Items are plain strings, so any text encoder takes them as they come. What a method needs beyond the text rides
along as per-item ``fields`` of :class:`TextSource`, and :class:`~datamodules.text.base.TextEpisodicDataModule`
gathers them into ``Episode.extras`` aligned with ``support + query`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from datamodules.episodes import SPLITS, ListSource, Source


def check_split(split: dict[str, Sequence[int]], where: str) -> None:
    """Raise unless ``split`` names train/val/test class lists that are pairwise disjoint."""
    missing = [s for s in SPLITS if s not in split]
    if missing:
        raise ValueError(f"{where}: class split has no {missing} part")
    seen: dict[int, str] = {}
    for s in SPLITS:
        for c in split[s]:
            if c in seen:
                raise ValueError(f"{where}: class {c} is in both the {seen[c]} and the {s} split")
            seen[int(c)] = s


# -- sources ----------------------------------------------------------------------------------------------------

class TextSource(ListSource):
    """Texts (strings) with labels, plus optional per-item ``fields`` (entity spans, tokens, ...).

    ``fields[name]`` is a tensor with one row per item (gathered with one index) or a list (gathered item by
    item). :meth:`TextEpisodicDataModule.episode_extras` copies them into ``Episode.extras[name]``.
    """

    def __init__(self, texts: Sequence[str], labels: torch.Tensor | Sequence[int],
                 class_names: dict[int, str] | None = None, fields: dict[str, Any] | None = None):
        super().__init__(list(texts), torch.as_tensor(labels, dtype=torch.long), class_names)
        self.fields = dict(fields or {})
        for name, values in self.fields.items():
            if len(values) != len(self.items):
                raise ValueError(f"TextSource: field {name!r} has {len(values)} rows for {len(self.items)} items")

    def gather_fields(self, indices: torch.Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, values in self.fields.items():
            out[name] = values[indices] if isinstance(values, torch.Tensor) else [values[int(i)] for i in indices]
        return out

    def subset(self, classes: Sequence[int]) -> TextSource:
        """The items whose label is in ``classes`` (a class split), fields included."""
        wanted = torch.as_tensor(list(classes), dtype=torch.long)
        keep = torch.isin(self.labels, wanted).nonzero().flatten()
        names = {c: n for c, n in self.class_names.items() if c in set(wanted.tolist())}
        return TextSource([self.items[int(i)] for i in keep], self.labels[keep], names, self.gather_fields(keep))


@dataclass
class TextRecords:
    """What a reader returns: texts, integer labels, readable class names and per-item fields."""

    texts: list[str]
    labels: list[int]
    class_names: dict[int, str]
    fields: dict[str, Any] = field(default_factory=dict)

    def source(self) -> TextSource:
        fields = {k: (torch.tensor(v, dtype=torch.long) if k in ("head", "tail") else v)
                  for k, v in self.fields.items()}
        return TextSource(self.texts, self.labels, self.class_names, fields)


def token_span(value: Any, n_tokens: int, where: str, key: str) -> list[int]:
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) for v in value)):
        raise ValueError(f"{where}: {key!r} must be [start, end] token indices, got {value!r}")
    start, end = value
    if not 0 <= start <= end < n_tokens:
        raise ValueError(f"{where}: {key!r} span {value} is outside the {n_tokens} tokens (end is inclusive)")
    return [start, end]


def split_sources(records: TextRecords, split: dict[str, list[int]], where: str) -> dict[str, Source]:
    check_split(split, where)
    present = set(records.labels)
    wanted = {c for s in SPLITS for c in split[s]}
    unknown = sorted(present - wanted)
    if unknown:
        raise ValueError(f"{where}: labels {unknown[:10]} are in no class split; is the dataset name right?")
    absent = sorted(wanted - present)
    if absent:
        raise ValueError(f"{where}: split classes {absent[:10]} have no examples in the file")
    src = records.source()
    return {s: src.subset(split[s]) for s in SPLITS}
