"""Helpers shared by test files (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def zoo_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `python -m zoo` subprocess: offline W&B under tmp_path, one thread per process, and
    tests/ importable so configs can name test-only callbacks such as ``probes.EpisodeProbe``."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_DIR=str(tmp_path), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "tests"), str(ROOT), env.get("PYTHONPATH")) if p)
    return env
