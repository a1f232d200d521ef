"""Stored models: the pretrained registry (``pretrained``), W&B artifacts as a weights source,
checkpoint reading with ``weights_only=True``, the shipped configs and registry (``shipped``) and the
table of moved class paths (``moved``).
"""
