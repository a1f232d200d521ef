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


def print_config_text(*configs, args: tuple[str, ...] = ("fit",)) -> str:
    """What ``zoo <args> --config C1 --config C2 ... --print_config`` prints, run in this process (a config is a
    path or a shipped config's name; ``args``: the subcommand and any options before the configs)."""
    import contextlib
    import io
    import sys
    from unittest import mock

    from zoo.cli.lightning_cli import build_cli

    command = [*args, *(a for c in configs for a in ("--config", str(c))), "--print_config"]
    out = io.StringIO()
    with mock.patch.object(sys, "argv", ["zoo"]), contextlib.redirect_stdout(out):
        try:
            build_cli(command)
        except SystemExit as exit_:
            assert not exit_.code, f"{command}: exit {exit_.code}"
        else:
            raise AssertionError(f"{command}: --print_config did not exit")
    return out.getvalue()


def print_config(*configs) -> dict:
    """What ``zoo fit --config ... --print_config`` prints, parsed."""
    import yaml

    return yaml.safe_load(print_config_text(*configs))
