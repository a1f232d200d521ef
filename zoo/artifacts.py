"""Checkpoints as W&B artifacts: a weights source for the registry, and ``zoo publish NAME`` to upload one.

A registry entry may name its weights as ``wandb-artifact://ENTITY/PROJECT/NAME:VERSION/FILE`` instead of a path
in the repository. :func:`resolve_artifact` downloads that file once into ``data_root()/artifacts`` and checks
the entry's sha256 before anything reads it (and on every later use of the cached copy), so a moved alias
(``:latest``) or a tampered upload is an error, not silently different weights. Pin a version (``:v3``).

    zoo publish protonet-conv4-glyphs-5w1s [--entity ME] [--project metazoo]

uploads a registry checkpoint (after verifying its sha256) as a ``model`` artifact whose metadata is the entry
(system, setting, metrics, command, model, config, sha256) and prints the reference to put in a registry entry.
Online only: without W&B credentials it says so and uploads nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path, PureWindowsPath
from typing import Any

from datamodules.cache import ChecksumError, atomic_path, data_root, file_lock, sha256_file

SCHEME = "wandb-artifact://"


def is_artifact_ref(location: str | os.PathLike) -> bool:
    """True for ``wandb-artifact://`` weights sources."""
    return str(location).startswith(SCHEME)


def parse_artifact_ref(ref: str) -> tuple[str, str]:
    """``wandb-artifact://E/P/NAME:V/FILE`` -> (``"E/P/NAME:V"``, ``"FILE"``); anything else is a ValueError."""
    if not is_artifact_ref(ref):
        raise ValueError(f"expected {SCHEME}ENTITY/PROJECT/NAME:VERSION/FILE, got {ref!r}")
    parts = ref[len(SCHEME):].split("/")
    if len(parts) < 4 or ":" not in parts[2] or not all(parts):
        raise ValueError(f"artifact reference {ref!r}: expected {SCHEME}ENTITY/PROJECT/NAME:VERSION/FILE "
                         "(e.g. wandb-artifact://me/metazoo/protonet-conv4-glyphs-5w1s:v0/weights.safetensors)")
    # The FILE part becomes a path under the cache: nothing in it may climb out of it or start elsewhere.
    unsafe = [p for p in parts if p in (".", "..") or "\\" in p or "\0" in p]
    unsafe += [p for p in parts[3:] if PureWindowsPath(p).drive or ":" in p or p.startswith("~")]
    if unsafe:
        raise ValueError(f"artifact reference {ref!r}: path part(s) {unsafe} are not allowed (no '.', '..', "
                         f"backslashes, drives or ':' in FILE); the file must lie inside the artifact")
    return "/".join(parts[:3]), "/".join(parts[3:])


def artifact_cache_path(ref: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the file ``ref`` names is kept: ``<cache_dir>/<ENTITY--PROJECT--NAME--VERSION>/<FILE>``; a ValueError
    when ``ref`` is malformed or the path would resolve outside ``cache_dir`` (checked before anything is
    created)."""
    path, filename = parse_artifact_ref(ref)
    root = Path(cache_dir or data_root() / "artifacts")
    dest = root / path.replace("/", "--").replace(":", "--") / filename
    # resolve() also follows symbolic links already in the cache: a link planted there cannot redirect the file.
    if not dest.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"artifact reference {ref!r} resolves to {dest.resolve()}, outside the cache {root}")
    return dest


def resolve_artifact(ref: str, sha256: str, api: Any = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local, sha256-verified copy of the file ``ref`` names (see module docstring); downloads it once.

    Args:
        ref: ``wandb-artifact://ENTITY/PROJECT/NAME:VERSION/FILE``.
        sha256: the digest the registry entry records; a mismatch raises ``ChecksumError`` and keeps nothing.
        api: a ``wandb.Api()``-like object (``artifact(path).download(root=...)``); built when needed.
        cache_dir: default ``data_root()/artifacts``.
    """
    path, filename = parse_artifact_ref(ref)
    dest = artifact_cache_path(ref, cache_dir)
    if dest.is_file():  # already fetched: read-only use, no lock
        _check_cached(dest, ref, sha256)
        return dest
    with file_lock(dest):
        if dest.is_file():
            _check_cached(dest, ref, sha256)
            return dest
        if api is None:
            import wandb

            api = wandb.Api()
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
            root = Path(api.artifact(path).download(root=tmp))
            downloaded = root / filename
            if not downloaded.is_file():
                held = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
                raise FileNotFoundError(f"artifact {path} holds no file {filename!r}; it holds {held}")
            if (actual := sha256_file(downloaded)) != sha256:
                raise ChecksumError(f"artifact {ref}: sha256 {actual}, expected {sha256}; nothing was kept")
            with atomic_path(dest) as target:
                shutil.copyfile(downloaded, target)
    return dest


def _check_cached(dest: Path, ref: str, sha256: str) -> None:
    if (actual := sha256_file(dest)) != sha256:
        raise ChecksumError(f"cached artifact file {dest} of {ref}: sha256 {actual}, expected {sha256}; the file is "
                            "corrupt or was replaced (delete it to download again)")


def publish(name: str, project: str = "metazoo", entity: str | None = None) -> str:
    """Upload registry checkpoint ``name`` as a W&B ``model`` artifact; returns its ``wandb-artifact://`` ref.

    The weights are found where :func:`zoo.pretrained.load_pretrained` finds them (``resolve_weights``: the
    repository, ``$METAZOO_CHECKPOINTS``, the entry's url). Raises FileNotFoundError naming the places looked in
    when they are nowhere, RuntimeError without credentials (nothing is uploaded) and ChecksumError when the local
    weights do not match the registry.
    """
    from zoo.pretrained import registry_entry, resolve_weights
    from zoo.wandb_logger import wandb_credentials_configured

    entry = registry_entry(name)
    weights = resolve_weights(entry)
    if (actual := sha256_file(weights)) != entry.sha256:
        raise ChecksumError(f"{weights}: sha256 {actual}, but the registry records {entry.sha256}; not published")
    if not wandb_credentials_configured():
        raise RuntimeError("publishing needs W&B credentials (WANDB_API_KEY or `wandb login`); nothing was uploaded")
    import wandb

    metadata = {"sha256": entry.sha256, "system": entry.system, "setting": entry.setting, "metrics": entry.metrics,
                "command": entry.command, "model": entry.model, "config": entry.config, "overrides": entry.overrides}
    run = wandb.init(project=project, entity=entity, job_type="publish", name=f"publish-{name}", mode="online")
    try:
        artifact = wandb.Artifact(name, type="model", description=entry.notes or f"{entry.system}: {entry.setting}",
                                  metadata=metadata)
        artifact.add_file(str(weights), name=weights.name)
        run.log_artifact(artifact)
        artifact.wait()
        return f"{SCHEME}{run.entity}/{run.project}/{name}:{artifact.version}/{weights.name}"
    finally:
        run.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a registry entry (see zoo.list_pretrained())")
    parser.add_argument("--project", default="metazoo")
    parser.add_argument("--entity", default=None, help="default: your W&B default entity")
    args = parser.parse_args(argv)
    try:
        ref = publish(args.name, args.project, args.entity)
    except (KeyError, RuntimeError, ValueError, OSError) as err:  # ChecksumError is a ValueError
        print(f"zoo publish: {err.args[0] if err.args else err}", file=sys.stderr)  # KeyError's str() adds quotes
        return 2
    print(f"published {args.name}; registry weights source: {ref}")
    return 0
