"""Multiple-choice items and tasks: the one item type every QA reader produces and every QA system consumes.

An item is a context (may be empty), a question, 2..5 choices and the index of the one correct choice. A task is
a named dataset with train/dev/test lists of items. Low-resource targets are deterministic subsets of a task's
train list (:func:`low_resource`), so every method of a benchmark sees the same target items for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

MIN_CHOICES, MAX_CHOICES = 2, 5
QA_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question: ``choices[answer]`` is correct; ``id`` names it in its file."""

    context: str
    question: str
    choices: tuple[str, ...]
    answer: int
    id: str = ""

    @property
    def prompt(self) -> str:
        """What a scorer reads beside each choice: context then question (either may be empty)."""
        return f"{self.context} {self.question}".strip()


def make_item(context: str, question: str, choices: Sequence[str], answer: int, where: str, id: str = "") -> MCItem:
    """An :class:`MCItem`, checked: ``where`` (``"<file>:<line>"``) names the record in every error."""
    choices = tuple(choices)
    if not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
        raise ValueError(f"{where}: a multiple-choice item needs {MIN_CHOICES}..{MAX_CHOICES} choices, "
                         f"got {len(choices)}")
    for i, c in enumerate(choices):
        if not isinstance(c, str) or not c.strip():
            raise ValueError(f"{where}: choice {i} is empty or not text ({c!r})")
    if not isinstance(context, str) or not isinstance(question, str):
        raise ValueError(f"{where}: context and question must be text")
    if not context.strip() and not question.strip():
        raise ValueError(f"{where}: both context and question are empty")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ValueError(f"{where}: answer {answer!r} is not among the {len(choices)} choices "
                         f"(expected an index 0..{len(choices) - 1})")
    return MCItem(context, question, choices, answer, id)


@dataclass
class MCTask:
    """A named multiple-choice dataset with ``train``, ``dev`` and ``test`` item lists."""

    name: str
    train: list[MCItem]
    dev: list[MCItem]
    test: list[MCItem] = field(default_factory=list)

    def split(self, name: str) -> list[MCItem]:
        if name not in QA_SPLITS:
            raise ValueError(f"task {self.name}: no split {name!r} (expected one of {QA_SPLITS})")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in QA_SPLITS}


def low_resource(items: Sequence[MCItem], size: int, seed: int, where: str = "target") -> list[MCItem]:
    """``size`` items drawn without replacement by a generator seeded with ``seed`` (the same on any machine).

    Nested across sizes for one seed (the 32 items are the first 32 of the 128), so a gain that shrinks with the
    size is not an artefact of different draws. A size larger than the train set is an error, not a silent cap.
    """
    if size < 1:
        raise ValueError(f"{where}: target size must be >= 1, got {size}")
    if size > len(items):
        raise ValueError(f"{where}: target size {size} is larger than its train set ({len(items)} items)")
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))
    return [items[i] for i in order[:size].tolist()]
