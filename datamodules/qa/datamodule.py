"""Old import path (before issue 22 gave every package one naming rule): re-exports what it held.

Import from :mod:`datamodules.qa.base` (the shared DataModule), :mod:`datamodules.qa.wordnet_qa` and
:mod:`datamodules.qa.file_qa` instead. Kept so branches written before the move still import; ``zoo.hub.moved.MOVED``
maps the old class paths. Delete once nothing imports it.
"""

from datamodules.qa.base import ItemBatches, MetaIterationDataset, MultipleChoiceDataModule, collate_items, mislabel
from datamodules.qa.file_qa import FileQADataModule
from datamodules.qa.wordnet_qa import WordNetQADataModule

__all__ = ["FileQADataModule", "ItemBatches", "MetaIterationDataset", "MultipleChoiceDataModule",
           "WordNetQADataModule", "collate_items", "mislabel"]
