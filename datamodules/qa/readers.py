"""Old import path (before issue 22 gave every package one naming rule): the readers now live with the DataModule
that uses them, in :mod:`datamodules.qa.file_qa`. Kept so branches written before the move still import. Delete
once nothing imports it.
"""

from datamodules.qa.file_qa import (READERS, read_commonsenseqa, read_copa, read_cosmosqa, read_hellaswag, read_items,
                                    read_piqa, read_socialiqa, read_winogrande)

__all__ = ["READERS", "read_commonsenseqa", "read_copa", "read_cosmosqa", "read_hellaswag", "read_items", "read_piqa",
           "read_socialiqa", "read_winogrande"]
