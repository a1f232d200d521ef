"""Multiple-choice QA: the item and task types (items.py), the multi-source DataModule every QA dataset extends
(base.py), the embedded WordNet-QA benchmark (wordnet_qa.py) and the commonsense files users download, with their
readers (file_qa.py)."""

from datamodules.qa.base import MultipleChoiceDataModule, collate_items
from datamodules.qa.file_qa import READERS, FileQADataModule, read_items
from datamodules.qa.items import MCItem, MCTask, low_resource, make_item
from datamodules.qa.wordnet_qa import WordNetQADataModule

__all__ = ["FileQADataModule", "MCItem", "MCTask", "MultipleChoiceDataModule", "READERS", "WordNetQADataModule",
           "collate_items", "low_resource", "make_item", "read_items"]
