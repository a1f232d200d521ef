"""Few-shot relation classification, most of it with none-of-the-above (NOTA): NOTA episodes on the one Episode
type (episodes.py), the NOTA-aware DataModule base (base.py), the embedded WordNet-Rel benchmark (wordnet_rel.py),
FewRel 1.0 / 2.0 files, plain and NOTA (fewrel.py), and what GPAM's semi-factual views need from the data (views.py)."""

from datamodules.relations.base import RELATION_FIELDS, RelationDataModule, rate_name
from datamodules.relations.episodes import NotaEpisodeDataset, check_na_rate
from datamodules.relations.fewrel import FewRelDataModule, FewRelNOTADataModule, FewRelNYTSemEvalDataModule
from datamodules.relations.wordnet_rel import WordNetRelDataModule

# The names before issue 22's naming rule, so configs and code written with them still work (zoo.hub.moved.MOVED).
FewRelNOTA, FewRelNYTSemEval, WordNetRel = FewRelNOTADataModule, FewRelNYTSemEvalDataModule, WordNetRelDataModule

__all__ = ["FewRelDataModule", "FewRelNOTADataModule", "FewRelNYTSemEvalDataModule", "NotaEpisodeDataset",
           "RELATION_FIELDS", "RelationDataModule", "WordNetRelDataModule", "check_na_rate", "rate_name"]
