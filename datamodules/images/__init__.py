"""Image data: the DataModule every image dataset extends (base.py) and how it reads files (source.py), one module
per dataset on the user's disk (image_folder, omniglot, mini_imagenet, cub, stanford), Omniglot's shipped sets
(omniglot_small), the Glyphs benchmark built from the fonts installed with matplotlib (the glyphs package), and
the per-episode transforms they share (transforms.py)."""

from datamodules.images.base import ImageEpisodicDataModule
from datamodules.images.cub import CUBDataModule
from datamodules.images.glyphs import GlyphsDataModule
from datamodules.images.image_folder import ImageFolderDataModule
from datamodules.images.mini_imagenet import MiniImageNetDataModule
from datamodules.images.omniglot import OmniglotDataModule
from datamodules.images.omniglot_small import OmniglotRuns, OmniglotSmallDataModule
from datamodules.images.source import ImageReadError, ImageSource
from datamodules.images.stanford import StanfordCarsDataModule, StanfordDogsDataModule

# The names before issue 22's naming rule, so configs and code written with them still work (zoo.hub.moved.MOVED).
CUB, Glyphs, ImageEpisodes, ImageFolder = (CUBDataModule, GlyphsDataModule, ImageEpisodicDataModule,
                                           ImageFolderDataModule)
MiniImageNet, Omniglot, OmniglotSmall = MiniImageNetDataModule, OmniglotDataModule, OmniglotSmallDataModule
StanfordCars, StanfordDogs = StanfordCarsDataModule, StanfordDogsDataModule

__all__ = ["CUBDataModule", "GlyphsDataModule", "ImageEpisodicDataModule", "ImageFolderDataModule", "ImageReadError",
           "ImageSource", "MiniImageNetDataModule", "OmniglotDataModule", "OmniglotRuns", "OmniglotSmallDataModule",
           "StanfordCarsDataModule", "StanfordDogsDataModule"]
