"""The registry of pretrained checkpoints: a name -> weights, architecture, checksum and the numbers they reached.

``checkpoints/registry.yaml`` is the single source of truth. Each entry records the weights file (safetensors:
tensors only, so loading never unpickles anything), its sha256, the model's ``class_path``/``init_args`` (the same
form LightningCLI configs and Lightning checkpoints use), the config it was trained and tested with, the episode
setting, the metrics it reached and the command that produced them. Weights are verified before they are read.

The registry and the configs it names ship with the package (:mod:`zoo.hub.shipped`); the weights do not. They resolve,
in order, from the repository's ``checkpoints/``, a ``$METAZOO_CHECKPOINTS`` directory (files by their base name),
or the entry's ``url``, downloaded once into the cache and checked against the entry's sha256 before use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import yaml

from safefiles import ChecksumError, atomic_path, atomic_write_text, fetch, file_lock, sha256_file
from zoo.hub.shipped import ROOT, close_matches

if TYPE_CHECKING:  # torch, Lightning and safetensors load where weights are read: `zoo pretrained` needs none
    import lightning.pytorch as pl
    import torch

REGISTRY = Path(os.environ.get("METAZOO_REGISTRY", ROOT / "checkpoints" / "registry.yaml"))
CHECKPOINTS_ENV = "METAZOO_CHECKPOINTS"

__all__ = ["ChecksumError", "Entry", "REGISTRY", "ROOT", "export_weights", "list_pretrained", "load_pretrained",
           "load_pretrained_weights", "pretrained_table", "register", "registry_entry", "resolve_weights",
           "verified_state_dict", "verified_weights", "weights_file"]


@dataclass
class Entry:
    """One registry entry; paths in the file are relative to the repository root (the package, once installed)."""

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
    url: str = ""  # where the weights can be downloaded (http, https or file) when no local copy exists

    @property
    def weights_path(self) -> Path:
        """Where the weights sit in the repository (see :func:`resolve_weights` for where they are looked for)."""
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


def headline_metric(metrics: dict[str, Any]) -> str:
    """An entry's headline number with its 95% interval as ``zoo pretrained`` prints it: test accuracy in percent
    (``96.59 +- 0.31 %``), or for a BO policy its regret after the most trials (``regret@50 0.0156 +- 0.0091``)."""
    if "test_acc" in metrics:
        ci = metrics.get("test_ci95")
        return f"{100 * metrics['test_acc']:.2f}" + (f" +- {100 * ci:.2f}" if ci is not None else "") + " %"
    regrets = sorted((int(k.split("@")[1]), k) for k in metrics if k.startswith("test/regret@") and "_" not in k)
    if regrets:
        key = regrets[-1][1]
        ci = metrics.get(f"{key}_ci95")
        return f"{key.split('/')[1]} {metrics[key]:.4f}" + (f" +- {ci:.4f}" if ci is not None else "")
    return "-"


def pretrained_table() -> list[dict[str, str]]:
    """One row per registry entry (what ``zoo pretrained`` prints): name, system, setting, the headline metric
    ± its 95% interval (:func:`headline_metric`) and the command that tests it in its recorded setting."""
    return [{"name": name, "system": str(e.get("system", "")), "setting": str(e.get("setting", "")),
             "result": headline_metric(e.get("metrics") or {}), "command": f"zoo test --pretrained {name}"}
            for name, e in sorted(_read_registry().items())]


def registry_entry(name: str) -> Entry:
    """The entry called ``name``; an unknown name is an error that lists the known ones."""
    data = _read_registry()
    if name not in data:
        guess = close_matches(name, data)
        hint = f"did you mean {' or '.join(guess)}? " if guess else ""
        raise KeyError(f"unknown pretrained checkpoint {name!r} in {REGISTRY}; {hint}`zoo pretrained` lists all "
                       f"{len(data)}")
    fields = data[name]
    try:
        return Entry(name=name, **fields)
    except TypeError as err:
        raise ValueError(f"{REGISTRY}: entry {name!r} is malformed ({err})") from None




def resolve_weights(entry: Entry) -> Path:
    """The local weights file of ``entry``: the repository's ``checkpoints/``, then ``$METAZOO_CHECKPOINTS/<file
    name>``, then the entry's ``url`` (fetched once into the cache, sha256-verified): ``http(s)://`` or ``file://``
    through :func:`safefiles.fetch`, ``wandb-artifact://ENTITY/PROJECT/NAME:VERSION/FILE`` through
    :func:`zoo.hub.artifacts.resolve_artifact`; missing everywhere is an error that names the places looked in."""
    if entry.weights_path.is_file():
        return entry.weights_path
    looked = [str(entry.weights_path)]
    if directory := os.environ.get(CHECKPOINTS_ENV):
        candidate = Path(directory) / Path(entry.weights).name
        if candidate.is_file():
            return candidate
        looked.append(str(candidate))
    if entry.url:
        from zoo.hub.artifacts import is_artifact_ref, resolve_artifact

        if is_artifact_ref(entry.url):
            return resolve_artifact(entry.url, entry.sha256)
        return fetch(entry.url, sha256=entry.sha256)
    raise FileNotFoundError(f"pretrained {entry.name!r}: weights file is missing (looked in {', '.join(looked)}); "
                            f"set {CHECKPOINTS_ENV} to a directory holding {Path(entry.weights).name}, or give the "
                            f"entry a url")


def verified_weights(entry: Entry) -> Path:
    """The entry's local weights file (:func:`resolve_weights`) after checking that its sha256 matches."""
    path = resolve_weights(entry)
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise ChecksumError(f"pretrained {entry.name!r}: {path} has sha256 {actual}, but {REGISTRY} records "
                            f"{entry.sha256}; the file is corrupt or was replaced. Re-fetch it or re-run: "
                            f"{entry.command or '(no command recorded)'}")
    return path


def verified_state_dict(entry: Entry) -> dict[str, torch.Tensor]:
    """Read the entry's weights after checking that the file exists and its sha256 matches."""
    from safetensors.torch import load_file

    return load_file(str(verified_weights(entry)))


def weights_file(reference: str | os.PathLike) -> Path:
    """The weights file a weights argument names (``init_from``, ``zoo.methods.bo.load_nap``): an existing path as given,
    a path inside the repository such as ``checkpoints/nap-sl-hartmann3.safetensors`` from any working directory
    (relative to :data:`ROOT`, the package once installed), or a registry name (``nap-sl-hartmann3``) or the path
    its entry records, whose file is found as :func:`resolve_weights` finds it (``$METAZOO_CHECKPOINTS``, the
    entry's url) and checked against the entry's sha256 first."""
    path = Path(reference).expanduser()
    if path.exists() or path.is_absolute():
        return path
    if (ROOT / path).exists():
        return ROOT / path
    data = _read_registry()
    # a registry name, or the repository path an entry records (an installed package ships no weights there)
    name = str(reference) if str(reference) in data else \
        next((n for n, e in data.items() if e.get("weights") == path.as_posix()), None)
    if name is not None:
        return verified_weights(registry_entry(name))
    guess = close_matches(path.stem, data)
    hint = f"; did you mean the registry name {' or '.join(guess)}?" if guess else ""
    raise FileNotFoundError(f"{reference}: no such weights file (looked in {Path.cwd()} and {ROOT}) and no registry "
                            f"entry of that name{hint}")


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
    import lightning.pytorch as pl
    from lightning.pytorch.cli import instantiate_module

    from zoo.hub.moved import resolve_class_paths

    entry = registry_entry(name)
    # an entry recorded before a class moved names it by its old path (zoo.hub.moved.MOVED)
    config = resolve_class_paths({"_class_path": entry.model["class_path"], **entry.model.get("init_args", {})})
    model = instantiate_module(pl.LightningModule, config)
    load_pretrained_weights(model, name)
    return model.eval()


def export_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write ``model``'s state dict as safetensors (with optional string ``metadata`` in the header), atomically;
    returns the file's sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return sha256_file(path)


def machine_paths(value: Any, where: str = "") -> list[str]:
    """Every absolute filesystem path in ``value`` (nested dicts, lists, strings), as ``"<where>: <path>"``.

    A registry entry travels with the repository: an absolute path in it (``/home/me/.cache/...``, ``~/data``,
    ``--data.corpus_path=/abs/file``) names the machine that trained it and breaks on every other one. Paths are
    judged per whitespace- or ``=``-separated token, so prose such as ``"passages/s"`` or ``"1/3"`` is not one.
    """
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in machine_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [hit for i, v in enumerate(value) for hit in machine_paths(v, f"{where}[{i}]")]
    if not isinstance(value, str):
        return []
    tokens = value.replace("=", " ").split()
    return [f"{where}: {t}" for t in tokens
            if (t.startswith("/") and len(t) > 1 and t[1] != "/") or t.startswith("~/")
            or (len(t) > 2 and t[0].isalpha() and t[1] == ":" and t[2] in "\\/")]


def register(entry: Entry, path: Path | None = None) -> None:
    """Add or replace ``entry`` in the registry file (read-modify-write, atomically renamed into place).

    The read-modify-write holds :func:`~safefiles.file_lock` on the registry, so benchmark scripts running
    side by side do not drop each other's entries. An empty ``url`` is left out of the file. An entry holding an
    absolute path (:func:`machine_paths`) is refused: it would only work on the machine that wrote it.
    """
    found = machine_paths({k: v for k, v in entry.__dict__.items() if k not in ("name", "url")})
    if found:
        raise ValueError(f"registry entry {entry.name!r} holds absolute paths of this machine ({'; '.join(found)}); "
                         "leave them at their defaults (None: resolved under the data root at run time) or make "
                         "them relative to the repository")
    path = path or REGISTRY
    with file_lock(path):
        data = _read_registry(path, missing_ok=True)
        data[entry.name] = {k: v for k, v in entry.__dict__.items() if k != "name" and not (k == "url" and not v)}
        text = yaml.safe_dump(dict(sorted(data.items())), sort_keys=False, width=120)
        atomic_write_text(path, "# Pretrained checkpoints. Written by the benchmark scripts named in each entry's "
                                "`command`.\n" + text)
