"""Old import path (before issue 22 gave every package one naming rule): re-exports what it held.

Import from :mod:`datamodules.domains.base`, :mod:`datamodules.domains.domainbed` and
:mod:`datamodules.domains.wilds` instead. Kept so branches written before the move still import; ``zoo.hub.moved.MOVED``
maps the old class paths. Delete once nothing imports it.
"""

from datamodules.domains.domainbed import DomainBedFolderDataModule
from datamodules.domains.base import ImageDomainsDataModule, holdout_mask
from datamodules.domains.wilds import WILDS_PRESETS, WildsMetadataDataModule

# the names this module gave them
DomainBedFolder, WildsMetadata = DomainBedFolderDataModule, WildsMetadataDataModule
_ImageDomains = ImageDomainsDataModule

__all__ = ["DomainBedFolder", "WILDS_PRESETS", "WildsMetadata", "holdout_mask"]
