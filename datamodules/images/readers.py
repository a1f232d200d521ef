"""Old import path (before issue 22 split this module): re-exports what it held under its old names.

Import from the modules named for each idea instead: :mod:`datamodules.images.source` (decoding, listing files),
:mod:`datamodules.images.base` (the shared DataModule) and one module per dataset. Kept so branches written before
the split still import; ``zoo.hub.moved.MOVED`` maps the old class paths. Delete once nothing imports it.
"""

from datamodules.images.base import ImageEpisodicDataModule, PredictEpisodes
from datamodules.images.cub import CUBDataModule
from datamodules.images.image_folder import ImageFolderDataModule
from datamodules.images.mini_imagenet import MiniImageNetDataModule
from datamodules.images.omniglot import OmniglotDataModule
from datamodules.images.source import (AUTO_CACHE_MAX_BYTES, IMAGE_EXTENSIONS, ImageReadError, ImageSource, SplitLists,
                                       dataset_root, decode_image, interleaved_split, is_image_file,
                                       list_class_folders, list_images, read_split_csv, resolve_listed_file,
                                       unreadable_images, warn_colour_images)
from datamodules.images.stanford import StanfordCarsDataModule, StanfordDogsDataModule

# the names this module gave them
ImageEpisodes, ImageFolder, Omniglot, MiniImageNet = (ImageEpisodicDataModule, ImageFolderDataModule,
                                                      OmniglotDataModule, MiniImageNetDataModule)
CUB, StanfordDogs, StanfordCars = CUBDataModule, StanfordDogsDataModule, StanfordCarsDataModule
_SplitLists, _root_dir = SplitLists, dataset_root

__all__ = ["AUTO_CACHE_MAX_BYTES", "CUB", "IMAGE_EXTENSIONS", "ImageEpisodes", "ImageFolder", "ImageReadError",
           "ImageSource", "MiniImageNet", "Omniglot", "PredictEpisodes", "StanfordCars", "StanfordDogs",
           "decode_image", "interleaved_split", "is_image_file", "list_class_folders", "list_images",
           "read_split_csv", "resolve_listed_file", "unreadable_images", "warn_colour_images"]
