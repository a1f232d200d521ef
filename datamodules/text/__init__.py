"""Text data: readers for the published few-shot text benchmarks and passage corpora (readers.py), and the WordNet
benchmark with its leak-free passage corpus built from a local WordNet database (wordnet.py)."""

from datamodules.text.readers import (BaoTextDataModule, FewRelDataModule, HuffPostKGMLDataModule, PassageCorpus,
                                      TextEpisodicDataModule, TextSource)
from datamodules.text.wordnet import WordNetDataModule, WordNetNotFound

__all__ = ["BaoTextDataModule", "FewRelDataModule", "HuffPostKGMLDataModule", "PassageCorpus",
           "TextEpisodicDataModule", "TextSource", "WordNetDataModule", "WordNetNotFound"]
