"""The DataModule every text dataset extends: episodes of texts with their per-item fields as ``Episode.extras``,
and an optional passage corpus for retrieval.
"""

from __future__ import annotations

from typing import Any

from datamodules.base import EpisodicDataModule
from datamodules.episodes import Source
from datamodules.text.passages import PassageCorpus, read_passages
from datamodules.text.source import TextSource


class TextEpisodicDataModule(EpisodicDataModule):
    """Episodes of texts; a dataset subclass implements ``build_sources`` as for images.

    Adds to the base: per-item source fields copied into ``Episode.extras`` (support rows first, then query
    rows, both class-major, exactly as ``support_x + query_x``), an optional passage corpus for retrieval-augmented
    methods (:meth:`passage_corpus`).

    Args:
        corpus_path: a passage corpus (DPR TSV or JSON lines) for retrieval; ``None`` when no method needs one.
        max_passages: read only the first passages of ``corpus_path`` (quick runs).
        **kwargs: the episode setting of :class:`EpisodicDataModule`.
    """

    def __init__(self, corpus_path: str | None = None, max_passages: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.corpus_path, self.max_passages = corpus_path, max_passages
        self._corpus: PassageCorpus | None = None

    def episode_extras(self, source: Source, items: Any, classes: Any) -> dict:
        return source.gather_fields(items) if isinstance(source, TextSource) and source.fields else {}

    def passage_corpus(self) -> PassageCorpus | None:
        """The retrieval corpus of this dataset, or None; read once and kept."""
        if self._corpus is None and self.corpus_path is not None:
            self._corpus = read_passages(self.corpus_path, self.max_passages)
        return self._corpus
