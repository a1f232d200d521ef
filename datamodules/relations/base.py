"""The DataModule base of few-shot relation classification with NOTA: one fixed test set per NOTA rate.

A relation dataset provides its splits as :class:`~datamodules.text.TextSource` whose items are the instance text
(tokens joined by spaces) and whose fields are what a relation model needs (:data:`RELATION_FIELDS`): ``tokens``,
inclusive token spans ``head`` / ``tail`` (``[n, 2]``), ``head_type`` / ``tail_type`` (the strings that replace
an entity in GPAM's debiased views) and ``context_tokens`` (the tokens with some context words replaced by WordNet
synonyms). They arrive in ``Episode.extras`` in support-then-query order, as every text field does.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from datamodules.relations.episodes import NotaEpisodeDataset, check_na_rate
from datamodules.text.base import TextEpisodicDataModule

RELATION_FIELDS = ("tokens", "head", "tail", "head_type", "tail_type", "context_tokens")


def rate_name(rate: float) -> str:
    """How a NOTA rate names its test set in logged keys: ``0.3`` -> ``"nota0.3"``."""
    return f"nota{rate:g}"


class RelationDataModule(TextEpisodicDataModule):
    """N-way K-shot relation episodes with NOTA queries (label ``n_way``), see :mod:`datamodules.relations.episodes`.

    Args:
        train_na_rate: NOTA rate of training episodes (D-Proto trains at 0.5).
        val_na_rate: NOTA rate of the fixed validation episodes (model selection and threshold tuning).
        test_na_rates: one fixed test set per rate (0.15 / 0.3 / 0.5, D-Proto's and GPAM's protocol); the test
            loaders come in this order, and a module logs each under ``test/nota<rate>/...``.
        na_protocol: ``"dproto"`` (each of the ``n_way * q_query`` queries NOTA with probability na_rate) or
            ``"thunlp"`` (``q_query`` per relation plus ``int(na_rate * q_query)`` NOTA queries, integer rates).
        **kwargs: the episode setting of :class:`datamodules.text.TextEpisodicDataModule`.
    """

    def __init__(self, train_na_rate: float = 0.5, val_na_rate: float = 0.3,
                 test_na_rates: list[float] | None = None, na_protocol: str = "dproto", **kwargs: Any):
        super().__init__(**kwargs)
        rates = list(test_na_rates) if test_na_rates is not None else [0.15, 0.3, 0.5]
        if not rates:
            raise ValueError("test_na_rates must name at least one NOTA rate")
        check_na_rate(train_na_rate, na_protocol, "train_na_rate")
        check_na_rate(val_na_rate, na_protocol, "val_na_rate")
        for i, r in enumerate(rates):
            check_na_rate(r, na_protocol, f"test_na_rates[{i}]")
        self.train_na_rate, self.val_na_rate, self.test_na_rates = train_na_rate, val_na_rate, rates
        self.na_protocol = na_protocol

    def na_rate(self, split: str) -> float:
        return {"train": self.train_na_rate, "val": self.val_na_rate}.get(split, self.test_na_rates[0])

    def dataset(self, split: str, na_rate: float | None = None) -> NotaEpisodeDataset:
        self.setup()
        n, k, q = self.episode_setting(split)
        return NotaEpisodeDataset(self.sources[split], n, k, q, seed=self.split_seed(split), split=split,
                                  na_rate=self.na_rate(split) if na_rate is None else na_rate,
                                  protocol=self.na_protocol, name=self.name, extras_fn=self.episode_extras)

    def loader(self, split: str, na_rate: float | None = None) -> DataLoader:
        if self.episodes_per_batch != 1 and split == "train":
            raise ValueError("relation episodes with NOTA have varying query counts: episodes_per_batch must be 1")
        return self.striped_loader(self.dataset(split, na_rate), split, self.episodes[split], batch_size=None)

    def test_dataloader(self) -> list[DataLoader]:
        return [self.loader("test", r) for r in self.test_na_rates]
