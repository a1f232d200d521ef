"""Where the shipped configs and the checkpoint registry are, in a source checkout and in an installed package.

The files live at ``configs/`` and ``checkpoints/registry.yaml`` in the repository (README, tests and benchmarks
use those paths). A wheel maps them into the package as ``zoo/configs/`` and ``zoo/checkpoints/registry.yaml``
(``setup.py``), so below :data:`ROOT` the layout is the same either way and the registry's paths (``configs/...``,
``checkpoints/...``, relative to ``ROOT``) resolve in both.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # zoo/, above this hub/ folder
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


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``choices`` closest to a misspelt ``word`` (difflib's ratio of at least 0.6), best first: the "did you
    mean" of the zoo's one-line errors (config names, registry names, subcommands, options)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def shipped_config(name: str) -> Path:
    """The file of the shipped config ``name``; an unknown name is a one-line error with the closest names."""
    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        names = list_configs()
        guess = close_matches(name, names)
        hint = f"did you mean {' or '.join(guess)}? " if guess else ""
        raise FileNotFoundError(f"--config {name}: no such file, and no shipped config of that name; {hint}"
                                f"`zoo configs` lists all {len(names)}")
    return path


def resolve_config(value: str) -> str:
    """What a ``--config`` value names, the same way from any working directory: an existing file as given, a
    path inside the repository (``configs/protonet/glyphs.yaml``) below :data:`ROOT`, a shipped config's name
    (``protonet/glyphs``) as its file; anything else that looks like a file name is a one-line error with the
    closest shipped configs. A YAML/JSON string (a composed config, ``{...}``) is returned unchanged."""
    if is_config_name(value):
        return str(shipped_config(value))
    if not value.endswith((".yaml", ".yml")) or not _NAME.fullmatch(value) or Path(value).exists():
        return value
    if not Path(value).is_absolute() and (ROOT / value).is_file():
        return str(ROOT / value)
    stem = Path(value).with_suffix("").as_posix().removeprefix("configs/")
    try:
        return str(shipped_config(stem))
    except FileNotFoundError as err:  # the error names the shipped configs closest to what was meant
        raise FileNotFoundError(str(err).replace(f"--config {stem}:", f"--config {value}:", 1)) from None
