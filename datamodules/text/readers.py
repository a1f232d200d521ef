"""Old import path (before issue 22 split this module): re-exports what it held.

Import from the modules named for each idea instead: :mod:`datamodules.text.source`, :mod:`datamodules.text.passages`,
:mod:`datamodules.text.base`, :mod:`datamodules.text.bao`, :mod:`datamodules.text.huffpost` and, for FewRel,
:mod:`datamodules.relations.fewrel`. Kept so branches written before the split still import; ``zoo.hub.moved.MOVED``
maps the old class paths. Delete once nothing imports it.
"""

from typing import Any

from datamodules.text.bao import (BAO_20NEWS_NAMES, BAO_AMAZON_NAMES, BAO_CLASS_NAMES, BAO_SPLITS, MAX_TOKENS,
                                  BaoTextDataModule, read_bao_jsonl)
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.huffpost import KGML_HUFFPOST, KGML_HUFFPOST_INDEX, HuffPostKGMLDataModule, read_huffpost_raw
from datamodules.text.passages import PassageCorpus, read_passages
from datamodules.text.source import TextRecords, TextSource, check_split

__all__ = ["BAO_20NEWS_NAMES", "BAO_AMAZON_NAMES", "BAO_CLASS_NAMES", "BAO_SPLITS", "FewRelDataModule", "KGML_HUFFPOST",
           "KGML_HUFFPOST_INDEX", "MAX_TOKENS", "BaoTextDataModule", "HuffPostKGMLDataModule", "PassageCorpus",
           "TextEpisodicDataModule", "TextRecords", "TextSource", "check_split", "read_bao_jsonl", "read_fewrel_json",
           "read_huffpost_raw", "read_passages", "read_pid2name"]


def __getattr__(name: str) -> Any:
    # read lazily: datamodules.relations imports datamodules.text
    if name in ("FewRelDataModule", "read_fewrel_json", "read_pid2name"):
        from datamodules.relations import fewrel

        return getattr(fewrel, name)
    raise AttributeError(f"module 'datamodules.text.readers' has no attribute {name!r}")
