"""Domain-shift datasets: items carry a domain id; training batches are single-domain support/query groups and
evaluation walks each target domain in order (Meta-DMoE, WILDS, DomainBed).

``core`` holds the shared machinery (``DomainSet``, batches, sequential evaluation, super-domains), ``base`` the
DataModule every dataset extends, ``glyphs_domains`` the embedded benchmark and ``readers`` the users' layouts
(DomainBed folders, WILDS ``metadata.csv``).
"""

from datamodules.domains.base import DomainDataModule
from datamodules.domains.core import DomainBatches, DomainSequence, DomainSet, super_domains
from datamodules.domains.glyphs_domains import GlyphsDomains
from datamodules.domains.readers import DomainBedFolder, WildsMetadata

__all__ = ["DomainBatches", "DomainBedFolder", "DomainDataModule", "DomainSequence", "DomainSet", "GlyphsDomains",
           "WildsMetadata", "super_domains"]
