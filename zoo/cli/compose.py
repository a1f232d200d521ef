"""Configs that build on shared pieces: a top-level ``__base__`` list, resolved before LightningCLI parses.

    # configs/protonet/base.yaml
    __base__: [../trainer/default.yaml, ../callbacks/episodic-images.yaml, ../logger/wandb.yaml]
    model: ...

Each base (a path relative to the file that names it; bases may have bases of their own) is merged in the order
listed, then the file itself on top. Mappings merge key by key, recursively; anything else (lists such as
``trainer.callbacks``, strings, numbers) is replaced by the later file. [INTERP] A mapping whose ``class_path``
differs from the earlier one's replaces it whole, so ``init_args`` of one class never leak into another (a CSV
logger over a W&B one does not inherit ``project``).

The zoo CLI replaces each ``--config FILE`` that uses ``__base__`` by the merged config as a one-line JSON string
(jsonargparse's ``--config`` takes a path or a YAML/JSON string). The result has no ``__base__`` and is left alone
by a second expansion, so DDP, which re-executes ``sys.argv`` in every child, parses the same config, and
``--print_config`` and the run's saved ``config.yaml`` show the merged values. A file that names a class by a path
it no longer has (:data:`zoo.hub.moved.MOVED`) is expanded the same way, its class paths resolved, so a config written
before a class moved still runs. Other files are passed on as paths, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

BASE_KEY = "__base__"
CONFIG_FLAGS = ("--config", "-c")  # LightningCLI's spellings of the option


def merge(earlier: Any, later: Any) -> Any:
    """``later`` over ``earlier``: mappings merge recursively (unless their ``class_path`` differs), anything else
    is replaced. Neither argument is modified."""
    if not (isinstance(earlier, dict) and isinstance(later, dict)):
        return later
    if "class_path" in earlier and "class_path" in later and earlier["class_path"] != later["class_path"]:
        return later
    merged = dict(earlier)
    if "class_path" in later and "class_path" not in earlier:  # a class chosen late still reads first
        merged = {"class_path": later["class_path"], **earlier}
    for key, value in later.items():
        merged[key] = merge(earlier[key], value) if key in earlier else value
    return merged


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of options at the top level, got {type(data).__name__}")
    return data


def _bases(path: Path, data: dict[str, Any]) -> list[Path]:
    bases = data.get(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ValueError(f"{path}: {BASE_KEY} must be a list of paths relative to this file, got {bases!r}")
    resolved = []
    for base in bases:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise FileNotFoundError(f"{path}: {BASE_KEY} entry {base!r} names no file (looked for {base_path})")
        resolved.append(base_path)
    return resolved


def load_composed(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config in ``path`` with its ``__base__`` pieces merged under it (recursively), without ``__base__``."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ValueError(f"{BASE_KEY} cycle: {cycle}")
    data = _read_mapping(path)
    composed: dict[str, Any] = {}
    for base in _bases(path, data):
        composed = merge(composed, load_composed(base, (*_chain, path)))
    return merge(composed, {k: v for k, v in data.items() if k != BASE_KEY})


def base_files(path: str | Path, _chain: tuple[Path, ...] = ()) -> list[Path]:
    """Every file the config at ``path`` builds on through ``__base__``, directly or through other bases, in merge
    order (resolved paths)."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ValueError(f"{BASE_KEY} cycle: {cycle}")
    found: list[Path] = []
    for base in _bases(path, _read_mapping(path)):
        found += [*base_files(base, (*_chain, path)), base]
    return found


def needs_expansion(path: str | Path) -> bool:
    """Whether the config file at ``path`` names ``__base__`` pieces or a class path that moved
    (:data:`zoo.hub.moved.MOVED`), i.e. whether the CLI passes it on expanded rather than as a path."""
    from zoo.hub.moved import names_moved_class

    path = Path(path)
    try:
        is_file = path.suffix in (".yaml", ".yml", ".json") and path.is_file()
    except OSError:  # a YAML/JSON string too long to be a file name
        return False
    if not is_file:
        return False
    data = _read_mapping(path)
    return BASE_KEY in data or names_moved_class(data)


def expand(path: str | Path) -> str:
    """The config file at ``path``, composed (:func:`load_composed`) and with every moved class path resolved
    (:func:`zoo.hub.moved.resolve_class_paths`, in the file or any of its bases), as one JSON string."""
    from zoo.hub.moved import resolve_class_paths

    return json.dumps(resolve_class_paths(load_composed(path)))


def expand_config_args(args: list[str]) -> list[str]:
    """``args`` with every ``--config FILE`` (``-c FILE``, ``--config=FILE``) that uses ``__base__`` or names a
    moved class replaced by its JSON string (:func:`expand`); idempotent."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in CONFIG_FLAGS and i + 1 < len(out) and needs_expansion(out[i + 1]):
            out[i + 1] = expand(out[i + 1])
        elif arg.startswith("--config=") and needs_expansion(value := arg.split("=", 1)[1]):
            out[i] = "--config=" + expand(value)
    return out
