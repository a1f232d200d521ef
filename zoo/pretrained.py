"""The registry of pretrained checkpoints: a name -> weights, architecture, checksum and the numbers they reached.

``checkpoints/registry.yaml`` is the single source of truth. Each entry records the weights file (safetensors:
tensors only, so loading never unpickles anything), its sha256, the model's ``class_path``/``init_args`` (the same
form LightningCLI configs and Lightning checkpoints use), the config it was trained and tested with, the episode
setting, the metrics it reached and the command that produced them. Weights are verified before they are read.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.cli import instantiate_module
from safetensors.torch import load_file, save_file

from datamodules.cache import sha256_file

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = Path(os.environ.get("METAZOO_REGISTRY", ROOT / "checkpoints" / "registry.yaml"))


class ChecksumError(ValueError):
    """A weights file does not match the sha256 its registry entry records."""


@dataclass
class Entry:
    """One registry entry; paths in the file are relative to the repository root."""

    name: str
    system: str
    weights: str
    sha256: str
    model: dict[str, Any]
    config: str
    setting: str
    metrics: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    notes: str = ""
    overrides: list[str] = field(default_factory=list)  # CLI options that, after ``config``, give the setting

    @property
    def weights_path(self) -> Path:
        return (REGISTRY.parent.parent / self.weights).resolve()

    @property
    def config_path(self) -> Path:
        return (REGISTRY.parent.parent / self.config).resolve()


def _read_registry(path: Path | None = None, missing_ok: bool = False) -> dict[str, dict[str, Any]]:
    """The registry file's entries; a missing, unreadable or malformed file is an error naming it.

    ``missing_ok`` is for :func:`register`, which creates the file; readers must not mistake a wrong
    ``METAZOO_REGISTRY`` or a broken install for "no checkpoints".
    """
    path = path or REGISTRY
    if not path.is_file():
        if missing_ok and not path.exists():
            return {}
        raise FileNotFoundError(f"pretrained registry {path} does not exist or is not a file (set by "
                                f"METAZOO_REGISTRY or the install's checkpoints/registry.yaml)")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"pretrained registry {path} cannot be read: {type(err).__name__}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of checkpoint names to entries")
    return data


def list_pretrained(system: str | None = None) -> list[str]:
    """Names of the registered checkpoints, optionally only those of one system (e.g. ``"protonet"``)."""
    return sorted(n for n, e in _read_registry().items() if system is None or e.get("system") == system)


def registry_entry(name: str) -> Entry:
    """The entry called ``name``; an unknown name is an error that lists the known ones."""
    data = _read_registry()
    if name not in data:
        known = ", ".join(sorted(data)) or "(none)"
        raise KeyError(f"unknown pretrained checkpoint {name!r} in {REGISTRY}; known: {known}")
    fields = data[name]
    try:
        return Entry(name=name, **fields)
    except TypeError as err:
        raise ValueError(f"{REGISTRY}: entry {name!r} is malformed ({err})") from None




def verified_state_dict(entry: Entry) -> dict[str, torch.Tensor]:
    """Read the entry's weights after checking that the file exists and its sha256 matches."""
    path = entry.weights_path
    if not path.is_file():
        raise FileNotFoundError(f"pretrained {entry.name!r}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise ChecksumError(f"pretrained {entry.name!r}: {path} has sha256 {actual}, but {REGISTRY} records "
                            f"{entry.sha256}; the file is corrupt or was replaced. Re-fetch it or re-run: "
                            f"{entry.command or '(no command recorded)'}")
    return load_file(str(path))


def load_pretrained_weights(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """Load a verified registry checkpoint into an already built ``model`` (used by ``zoo test --pretrained``)."""
    state = verified_state_dict(registry_entry(name))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"pretrained {name!r} does not fit {type(model).__name__}: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]}; is the config's model the one the entry records?")
    return model


def load_pretrained(name: str) -> pl.LightningModule:
    """Build the model of registry entry ``name``, load its verified weights, and return it in eval mode."""
    entry = registry_entry(name)
    config = {"_class_path": entry.model["class_path"], **entry.model.get("init_args", {})}
    model = instantiate_module(pl.LightningModule, config)
    load_pretrained_weights(model, name)
    return model.eval()


def export_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write ``model``'s state dict as safetensors (with optional string ``metadata`` in the header), atomically;
    returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return sha256_file(path)


def register(entry: Entry, path: Path | None = None) -> None:
    """Add or replace ``entry`` in the registry file (read-modify-write, atomically renamed into place).

    The read-modify-write holds an exclusive lock on ``<registry>.lock``, so benchmark scripts running side by side
    do not drop each other's entries.
    """
    import fcntl

    path = path or REGISTRY
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_registry(path, missing_ok=True)
        data[entry.name] = {k: v for k, v in entry.__dict__.items() if k != "name"}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write("# Pretrained checkpoints. Written by the benchmark scripts named in each entry's `command`.\n")
            yaml.safe_dump(dict(sorted(data.items())), f, sort_keys=False, width=120)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
