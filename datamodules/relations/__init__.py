"""Few-shot relation classification with none-of-the-above (NOTA): NOTA episodes on the one Episode type
(episodes.py), the NOTA-aware DataModule base (base.py), the embedded WordNet-Rel benchmark (wordnet_rel.py),
FewRel 1.0 / 2.0 files (fewrel.py) and what GPAM's semi-factual views need from the data (views.py)."""

from datamodules.relations.base import RELATION_FIELDS, RelationDataModule, rate_name
from datamodules.relations.episodes import NotaEpisodeDataset, check_na_rate
from datamodules.relations.fewrel import FewRelNOTA, FewRelNYTSemEval
from datamodules.relations.wordnet_rel import WordNetRel

__all__ = ["FewRelNOTA", "FewRelNYTSemEval", "NotaEpisodeDataset", "RELATION_FIELDS", "RelationDataModule", "WordNetRel",
           "check_na_rate", "rate_name"]
