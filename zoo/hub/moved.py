"""Class paths that moved: the old dotted path of a class -> where it lives now.

Configs, registry entries and Lightning checkpoints written before a class moved name it by its old path. Loaders
look a class path up here first (``resolve_class_path``) so an old file still loads, and the shipped-config test
uses the same table to compare ``--print_config`` output with what it was before the move.
"""

from typing import Any

MOVED: dict[str, str] = {}

# datamodules: the large files split at their seams, and every DataModule named <Name>DataModule (issue 22 items 2
# and 6). Generated from the tree before the split (every class whose dotted path changed, module-level and
# package-level paths both); /work/wt/data-rewrite.py applies it to configs, docs and code.
MOVED.update({
    "datamodules.bo.GPPriorFunctions": "datamodules.bo.GPPriorFunctionsDataModule",
    "datamodules.bo.HPOBFunctions": "datamodules.bo.HPOBFunctionsDataModule",
    "datamodules.bo.SyntheticFunctions": "datamodules.bo.SyntheticFunctionsDataModule",
    "datamodules.bo.TestFunctions": "datamodules.bo.TestFunctionsDataModule",
    "datamodules.bo.functions.FunctionDataModule": "datamodules.bo.base.FunctionDataModule",
    "datamodules.bo.functions.GPPriorFamily": "datamodules.bo.synthetic.GPPriorFamily",
    "datamodules.bo.functions.GPPriorFunctions": "datamodules.bo.synthetic.GPPriorFunctionsDataModule",
    "datamodules.bo.functions.HPOBFunctions": "datamodules.bo.hpob.HPOBFunctionsDataModule",
    "datamodules.bo.functions.HPOBSpace": "datamodules.bo.hpob.HPOBSpace",
    "datamodules.bo.functions.HPOBSurrogateSampler": "datamodules.bo.gp_surrogate.HPOBSurrogateSampler",
    "datamodules.bo.functions.SyntheticFunctions": "datamodules.bo.synthetic.SyntheticFunctionsDataModule",
    "datamodules.bo.functions.TaskDataset": "datamodules.bo.tasks.TaskDataset",
    "datamodules.bo.functions.TaskFamily": "datamodules.bo.tasks.TaskFamily",
    "datamodules.bo.functions.TestFunctionFamily": "datamodules.bo.synthetic.TestFunctionFamily",
    "datamodules.bo.functions.TestFunctions": "datamodules.bo.synthetic.TestFunctionsDataModule",
    "datamodules.domains.DomainBedFolder": "datamodules.domains.DomainBedFolderDataModule",
    "datamodules.domains.GlyphsDomains": "datamodules.domains.GlyphsDomainsDataModule",
    "datamodules.domains.WildsMetadata": "datamodules.domains.WildsMetadataDataModule",
    "datamodules.domains.glyphs_domains.GlyphsDomains": "datamodules.domains.glyphs_domains.GlyphsDomainsDataModule",
    "datamodules.domains.readers.DomainBedFolder": "datamodules.domains.domainbed.DomainBedFolderDataModule",
    "datamodules.domains.readers.WildsMetadata": "datamodules.domains.wilds.WildsMetadataDataModule",
    "datamodules.domains.readers._ImageDomains": "datamodules.domains.base.ImageDomainsDataModule",
    "datamodules.images.CUB": "datamodules.images.CUBDataModule",
    "datamodules.images.Glyphs": "datamodules.images.GlyphsDataModule",
    "datamodules.images.ImageEpisodes": "datamodules.images.ImageEpisodicDataModule",
    "datamodules.images.ImageFolder": "datamodules.images.ImageFolderDataModule",
    "datamodules.images.MiniImageNet": "datamodules.images.MiniImageNetDataModule",
    "datamodules.images.Omniglot": "datamodules.images.OmniglotDataModule",
    "datamodules.images.OmniglotSmall": "datamodules.images.OmniglotSmallDataModule",
    "datamodules.images.StanfordCars": "datamodules.images.StanfordCarsDataModule",
    "datamodules.images.StanfordDogs": "datamodules.images.StanfordDogsDataModule",
    "datamodules.images.glyphs.Glyphs": "datamodules.images.glyphs.GlyphsDataModule",
    "datamodules.images.omniglot_small.OmniglotSmall": "datamodules.images.omniglot_small.OmniglotSmallDataModule",
    "datamodules.images.readers.CUB": "datamodules.images.cub.CUBDataModule",
    "datamodules.images.readers.ImageEpisodes": "datamodules.images.base.ImageEpisodicDataModule",
    "datamodules.images.readers.ImageFolder": "datamodules.images.image_folder.ImageFolderDataModule",
    "datamodules.images.readers.ImageReadError": "datamodules.images.source.ImageReadError",
    "datamodules.images.readers.ImageSource": "datamodules.images.source.ImageSource",
    "datamodules.images.readers.MiniImageNet": "datamodules.images.mini_imagenet.MiniImageNetDataModule",
    "datamodules.images.readers.Omniglot": "datamodules.images.omniglot.OmniglotDataModule",
    "datamodules.images.readers.PredictEpisodes": "datamodules.images.base.PredictEpisodes",
    "datamodules.images.readers.StanfordCars": "datamodules.images.stanford.StanfordCarsDataModule",
    "datamodules.images.readers.StanfordDogs": "datamodules.images.stanford.StanfordDogsDataModule",
    "datamodules.images.readers._SplitLists": "datamodules.images.source.SplitLists",
    "datamodules.qa.datamodule.FileQADataModule": "datamodules.qa.file_qa.FileQADataModule",
    "datamodules.qa.datamodule.ItemBatches": "datamodules.qa.base.ItemBatches",
    "datamodules.qa.datamodule.MetaIterationDataset": "datamodules.qa.base.MetaIterationDataset",
    "datamodules.qa.datamodule.MultipleChoiceDataModule": "datamodules.qa.base.MultipleChoiceDataModule",
    "datamodules.qa.datamodule.WordNetQADataModule": "datamodules.qa.wordnet_qa.WordNetQADataModule",
    "datamodules.relations.FewRelNOTA": "datamodules.relations.FewRelNOTADataModule",
    "datamodules.relations.FewRelNYTSemEval": "datamodules.relations.FewRelNYTSemEvalDataModule",
    "datamodules.relations.WordNetRel": "datamodules.relations.WordNetRelDataModule",
    "datamodules.relations.fewrel.FewRelNOTA": "datamodules.relations.fewrel.FewRelNOTADataModule",
    "datamodules.relations.fewrel.FewRelNYTSemEval": "datamodules.relations.fewrel.FewRelNYTSemEvalDataModule",
    "datamodules.relations.wordnet_rel.WordNetRel": "datamodules.relations.wordnet_rel.WordNetRelDataModule",
    "datamodules.text.FewRelDataModule": "datamodules.relations.FewRelDataModule",
    "datamodules.text.readers.BaoTextDataModule": "datamodules.text.bao.BaoTextDataModule",
    "datamodules.text.readers.FewRelDataModule": "datamodules.relations.fewrel.FewRelDataModule",
    "datamodules.text.readers.HuffPostKGMLDataModule": "datamodules.text.huffpost.HuffPostKGMLDataModule",
    "datamodules.text.readers.PassageCorpus": "datamodules.text.passages.PassageCorpus",
    "datamodules.text.readers.TextEpisodicDataModule": "datamodules.text.base.TextEpisodicDataModule",
    "datamodules.text.readers.TextRecords": "datamodules.text.source.TextRecords",
    "datamodules.text.readers.TextSource": "datamodules.text.source.TextSource",
    "datamodules.text.wordnet.PhraseMatcher": "datamodules.wordnet.PhraseMatcher",
    "datamodules.text.wordnet.Synset": "datamodules.wordnet.Synset",
    "datamodules.text.wordnet.WordNet": "datamodules.wordnet.WordNet",
    "datamodules.text.wordnet.WordNetFiles": "datamodules.wordnet.WordNetFiles",
    "datamodules.text.wordnet.WordNetNotFound": "datamodules.wordnet.WordNetNotFound",
})


# -- regroup (issue 22): generated by regroup-rewrite.py, do not edit by hand --
_REGROUPED = {
    "zoo.backbones.Conv4": "zoo.nn.backbones.Conv4",
    "zoo.backbones.ResNet12": "zoo.nn.backbones.ResNet12",
    "zoo.backbones.ResNet12Block": "zoo.nn.backbones.ResNet12Block",
    "zoo.base.ZooModule": "zoo.training.base.ZooModule",
    "zoo.bo.AskTell": "zoo.methods.bo.AskTell",
    "zoo.bo.BOResult": "zoo.methods.bo.BOResult",
    "zoo.bo.BOState": "zoo.methods.bo.BOState",
    "zoo.bo.GPEI": "zoo.methods.bo.GPEI",
    "zoo.bo.HPOBAdapter": "zoo.methods.bo.HPOBAdapter",
    "zoo.bo.NAPStrategy": "zoo.methods.bo.NAPStrategy",
    "zoo.bo.NAPSuggester": "zoo.methods.bo.NAPSuggester",
    "zoo.bo.RandomSearch": "zoo.methods.bo.RandomSearch",
    "zoo.bo.Strategy": "zoo.methods.bo.Strategy",
    "zoo.checkpoint_io.SafeCheckpointIO": "zoo.hub.checkpoint_io.SafeCheckpointIO",
    "zoo.checkpoint_io.UntrustedCheckpointError": "zoo.hub.checkpoint_io.UntrustedCheckpointError",
    "zoo.cli.ZooArgumentParser": "zoo.cli.lightning_cli.ZooArgumentParser",
    "zoo.cli.ZooCLI": "zoo.cli.lightning_cli.ZooCLI",
    "zoo.cli.ZooSaveConfigCallback": "zoo.cli.lightning_cli.ZooSaveConfigCallback",
    "zoo.compare.Comparison": "zoo.cli.compare.Comparison",
    "zoo.compare.EpisodeSetMismatch": "zoo.cli.compare.EpisodeSetMismatch",
    "zoo.episodic.EpisodicModule": "zoo.training.episodic.EpisodicModule",
    "zoo.gpam.GPAM": "zoo.methods.gpam.GPAM",
    "zoo.gpam.NotaRelationModule": "zoo.methods.gpam.NotaRelationModule",
    "zoo.gpam.ProtoNOTA": "zoo.methods.gpam.ProtoNOTA",
    "zoo.image_encoder.HFImageEncoder": "zoo.nn.backbones.HFImageEncoder",
    "zoo.inner_loop.BatchStatisticsNorm": "zoo.training.inner_loop.BatchStatisticsNorm",
    "zoo.losses.ICNNScore": "zoo.methods.losses.ICNNScore",
    "zoo.maml.ANIL": "zoo.methods.maml.ANIL",
    "zoo.maml.BackboneWithHead": "zoo.nn.backbones.BackboneWithHead",
    "zoo.maml.MAML": "zoo.methods.maml.MAML",
    "zoo.meta_dmoe.MetaDMoE": "zoo.methods.meta_dmoe.MetaDMoE",
    "zoo.meta_dmoe.PreNormAggregator": "zoo.methods.meta_dmoe.PreNormAggregator",
    "zoo.meta_rtl.MCScorer": "zoo.methods.meta_rtl.MCScorer",
    "zoo.meta_rtl.MetaRTL": "zoo.methods.meta_rtl.MetaRTL",
    "zoo.meta_rtl.SourcePolicy": "zoo.methods.meta_rtl.SourcePolicy",
    "zoo.nap.HistoryAttention": "zoo.methods.nap.HistoryAttention",
    "zoo.nap.NAPEncoderLayer": "zoo.methods.nap.NAPEncoderLayer",
    "zoo.nap.NAPModule": "zoo.methods.nap.NAPModule",
    "zoo.nap.NAPNetwork": "zoo.methods.nap.NAPNetwork",
    "zoo.pretrained.Entry": "zoo.hub.pretrained.Entry",
    "zoo.protonet.ProtoNet": "zoo.methods.protonet.ProtoNet",
    "zoo.raml.PrototypeCrossAttention": "zoo.methods.raml.PrototypeCrossAttention",
    "zoo.raml.RAML": "zoo.methods.raml.RAML",
    "zoo.relation_encoder.EntityMarkerEncoder": "zoo.nn.relation_encoder.EntityMarkerEncoder",
    "zoo.report.Figure": "zoo.cli.report.Figure",
    "zoo.retrieval.IndexSpec": "zoo.nn.retrieval.IndexSpec",
    "zoo.retrieval.PassageIndex": "zoo.nn.retrieval.PassageIndex",
    "zoo.retrieval.Retriever": "zoo.nn.retrieval.Retriever",
    "zoo.retrieval.StaleIndexError": "zoo.nn.retrieval.StaleIndexError",
    "zoo.runs.Run": "zoo.cli.runs.Run",
    "zoo.schedulers.WarmupLinearDecay": "zoo.training.schedulers.WarmupLinearDecay",
    "zoo.text_encoder.TextEncoder": "zoo.nn.text_encoder.TextEncoder",
    "zoo.wandb_logger.WandbLogger": "zoo.cli.wandb_logger.WandbLogger",
}
MOVED.update({k: v for k, v in _REGROUPED.items() if k not in MOVED})
# -- end regroup --


def resolve_class_path(path: str) -> str:
    """The class path ``path`` has today (itself when it never moved)."""
    seen = set()
    while path in MOVED and path not in seen:  # a class may have moved twice
        seen.add(path)
        path = MOVED[path]
    return path


def resolve_class_paths(value: Any, found: list[tuple[str, str]] | None = None) -> Any:
    """``value`` (a config, a registry entry's ``model``, a checkpoint's hyper-parameters: nested dicts and lists)
    with every string that is a moved class path replaced by where the class lives now; the rest as it is.

    A whole-string match only: MOVED's keys are fully qualified dotted paths (``zoo.protonet.ProtoNet``), which no
    argument value means otherwise, so ``class_path``, ``_class_path`` and a class given as a plain value
    (``backbone: zoo.backbones.Conv4``) are all resolved. ``found`` collects the (old, new) pairs replaced.
    """
    if isinstance(value, dict):
        return {k: resolve_class_paths(v, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_class_paths(v, found) for v in value)
    if isinstance(value, str) and value in MOVED:
        new = resolve_class_path(value)
        if found is not None:
            found.append((value, new))
        return new
    return value


def names_moved_class(config: Any) -> bool:
    """Whether ``config`` (nested dicts and lists) names a class path that :data:`MOVED` maps elsewhere."""
    if isinstance(config, dict):
        return any((k in ("class_path", "_class_path") and isinstance(v, str) and v in MOVED) or names_moved_class(v)
                   for k, v in config.items())
    if isinstance(config, list):
        return any(names_moved_class(v) for v in config)
    return False
