"""The published systems, one file each (a LightningModule and the pieces only it uses), plus the
SuSana losses. A new method is a file here that extends ``zoo.training.episodic.EpisodicModule``
(episodic classification) or ``zoo.training.base.ZooModule`` (anything else); docs/layout.md.
"""
