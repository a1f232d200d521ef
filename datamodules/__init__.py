"""Everything that turns files into batches: the Episode type, the sampler, and one DataModule per dataset."""

from datamodules.base import EpisodicDataModule
from datamodules.episodes import Episode, EpisodeDataset, EpisodeSampler, ListSource, Source, TensorSource

__all__ = ["Episode", "EpisodeDataset", "EpisodeSampler", "EpisodicDataModule", "ListSource", "Source",
           "TensorSource"]
