"""Multiple-choice QA: the item and task types (items.py), readers for the commonsense files users download
(readers.py), the embedded WordNet-QA benchmark (wordnet_qa.py) and the multi-source data modules (datamodule.py)."""

from datamodules.qa.datamodule import FileQADataModule, MultipleChoiceDataModule, WordNetQADataModule, collate_items
from datamodules.qa.items import MCItem, MCTask, low_resource, make_item
from datamodules.qa.readers import READERS, read_items

__all__ = ["FileQADataModule", "MCItem", "MCTask", "MultipleChoiceDataModule", "READERS", "WordNetQADataModule",
           "collate_items", "low_resource", "make_item", "read_items"]
