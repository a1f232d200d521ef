"""Where the shipped configs and the checkpoint registry are, in a source checkout and in an installed package.

The files live at ``configs/`` and ``checkpoints/registry.yaml`` in the repository (README, tests and benchmarks
use those paths). A wheel maps them into the package as ``zoo/configs/`` and ``zoo/checkpoints/registry.yaml``
(``setup.py``), so below :data:`ROOT` the layout is the same either way and the registry's paths (``configs/...``,
``checkpoints/...``, relative to ``ROOT``) resolve in both.
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_TREE = _PACKAGE.parent

# A source checkout (editable install, or cwd on sys.path) has pyproject.toml beside zoo/; an installed package
# does not, and carries its own copy of configs/ and checkpoints/registry.yaml.
ROOT = _SOURCE_TREE if (_SOURCE_TREE / "pyproject.toml").is_file() and (_SOURCE_TREE / "configs").is_dir() \
    else _PACKAGE
CONFIGS = ROOT / "configs"

_NAME = re.compile(r"[\w.-]+(/[\w.-]+)*")


def list_configs() -> list[str]:
    """Names of the shipped configs (``protonet/glyphs``, ``trainer/debug``, ...): paths below ``configs/``
    without ``.yaml``, what ``--config NAME`` accepts."""
    return sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml"))


def describe_config(name: str) -> str:
    """The first line of a shipped config's header comment (what ``zoo configs`` prints beside its name)."""
    for line in (CONFIGS / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def is_config_name(value: str) -> bool:
    """Whether a ``--config`` value is meant as a shipped config's name: not an existing file, not a YAML string,
    and no ``.yaml`` suffix (``protonet/glyphs``)."""
    return bool(_NAME.fullmatch(value)) and not value.endswith((".yaml", ".yml")) and not Path(value).exists()


def shipped_config(name: str) -> Path:
    """The file of the shipped config ``name``; an unknown name is an error that lists the known ones."""
    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--config {name}: no such file, and no shipped config of that name under {CONFIGS}; "
                                f"shipped configs (`zoo configs`): {', '.join(list_configs())}")
    return path
