"""Callbacks shared by every system: per-episode tables, throughput/device monitoring, prediction writing, progress
lines for logs."""

from callbacks.episode_gallery import EpisodeGallery
from callbacks.episode_table import EpisodeTable
from callbacks.monitors import EpisodeThroughput
from callbacks.predictions import PredictionWriter
from callbacks.progress import EpochProgress

__all__ = ["EpisodeGallery", "EpisodeTable", "EpisodeThroughput", "EpochProgress", "PredictionWriter"]
