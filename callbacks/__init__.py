"""Callbacks shared by every system: per-episode tables, throughput/device monitoring, prediction writing, progress
lines for logs, and what a signal or a non-finite loss does to a run."""

from callbacks.episode_gallery import EpisodeGallery
from callbacks.episode_table import EpisodeTable
from callbacks.interruption import Interruption
from callbacks.monitors import EpisodeThroughput
from callbacks.nonfinite import NonFiniteLoss, NonFiniteLossError
from callbacks.predictions import PredictionWriter
from callbacks.progress import EpochProgress

__all__ = ["EpisodeGallery", "EpisodeTable", "EpisodeThroughput", "EpochProgress", "Interruption", "NonFiniteLoss",
           "NonFiniteLossError", "PredictionWriter"]
