"""Callbacks shared by every system: per-episode tables, throughput/device monitoring, prediction writing."""

from callbacks.episode_gallery import EpisodeGallery
from callbacks.episode_table import EpisodeTable
from callbacks.monitors import EpisodeThroughput
from callbacks.predictions import PredictionWriter

__all__ = ["EpisodeGallery", "EpisodeTable", "EpisodeThroughput", "PredictionWriter"]
