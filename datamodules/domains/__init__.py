"""Domain-shift datasets: items carry a domain id; training batches are single-domain support/query groups and
evaluation walks each target domain in order (Meta-DMoE, WILDS, DomainBed).

``core`` holds the shared machinery (``DomainSet``, batches, sequential evaluation, super-domains), ``base`` the
DataModules every dataset extends (and the image-folder ones), and one module per dataset:
``glyphs_domains`` the embedded benchmark, ``domainbed`` and ``wilds`` the users' layouts (DomainBed folders,
WILDS ``metadata.csv``).
"""

from datamodules.domains.base import DomainDataModule
from datamodules.domains.core import DomainBatches, DomainSequence, DomainSet, super_domains
from datamodules.domains.domainbed import DomainBedFolderDataModule
from datamodules.domains.glyphs_domains import GlyphsDomainsDataModule
from datamodules.domains.wilds import WildsMetadataDataModule

# The names before issue 22's naming rule, so configs and code written with them still work (zoo.hub.moved.MOVED).
DomainBedFolder, GlyphsDomains = DomainBedFolderDataModule, GlyphsDomainsDataModule
WildsMetadata = WildsMetadataDataModule

__all__ = ["DomainBatches", "DomainBedFolderDataModule", "DomainDataModule", "DomainSequence", "DomainSet",
           "GlyphsDomainsDataModule", "WildsMetadataDataModule", "super_domains"]
