"""Text data: texts as a Source (source.py), passage corpora for retrieval (passages.py), the DataModule every text
dataset extends (base.py), and one module per benchmark: Bao et al.'s files (bao.py), HuffPost with the KGML split
(huffpost.py) and the WordNet benchmark with its leak-free passage corpus (wordnet.py, built on the WordNet reader
:mod:`datamodules.wordnet`). FewRel lives with the other relation data in :mod:`datamodules.relations.fewrel`."""

from typing import Any

from datamodules.text.bao import BaoTextDataModule
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.huffpost import HuffPostKGMLDataModule
from datamodules.text.passages import PassageCorpus
from datamodules.text.source import TextSource
from datamodules.text.wordnet import WordNetDataModule
from datamodules.wordnet import WordNetNotFound

__all__ = ["BaoTextDataModule", "HuffPostKGMLDataModule", "PassageCorpus", "TextEpisodicDataModule", "TextSource",
           "WordNetDataModule", "WordNetNotFound"]


def __getattr__(name: str) -> Any:
    # FewRelDataModule moved to datamodules.relations (zoo.hub.moved.MOVED); read lazily, because relations imports text.
    if name == "FewRelDataModule":
        from datamodules.relations.fewrel import FewRelDataModule

        return FewRelDataModule
    raise AttributeError(f"module 'datamodules.text' has no attribute {name!r}")
