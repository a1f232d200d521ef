"""Shared test set-up: offline W&B, one Glyphs cache for the whole session, small shared helpers."""

from __future__ import annotations

import os

import pytest

from support import ROOT

# Tests never talk to W&B servers and never leave wandb/ folders in the tree.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One Glyphs build (about a minute on 2 cores) is shared by every test and by `zoo` subprocesses; it is cached
# under .data/ (git-ignored), so a second run of the suite does not rebuild it.
os.environ.setdefault("METAZOO_DATA", str(ROOT / ".data"))


@pytest.fixture(scope="session")
def glyphs_data():
    """The default Glyphs build (built on first use)."""
    from datamodules.images.glyphs import load_glyphs

    return load_glyphs()
