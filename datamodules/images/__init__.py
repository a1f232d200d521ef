"""Image data: readers for the standard few-shot layouts on the user's disk (readers.py), the Glyphs benchmark built
from the fonts installed with matplotlib (glyphs.py), and the per-episode transforms they share (transforms.py)."""

from datamodules.images.glyphs import Glyphs
from datamodules.images.readers import (CUB, ImageEpisodes, ImageFolder, ImageReadError, ImageSource, MiniImageNet,
                                        Omniglot, StanfordCars, StanfordDogs)
from datamodules.images.omniglot_small import OmniglotRuns, OmniglotSmall

__all__ = ["CUB", "Glyphs", "ImageEpisodes", "ImageFolder", "ImageReadError", "ImageSource", "MiniImageNet",
           "Omniglot", "OmniglotRuns", "OmniglotSmall", "StanfordCars", "StanfordDogs"]
