"""Checkpoints as W&B artifacts: a weights source for the registry (uploading one: :mod:`zoo.cli.publish`).

A registry entry may name its weights as ``wandb-artifact://ENTITY/PROJECT/NAME:VERSION/FILE`` instead of a path
in the repository. :func:`resolve_artifact` downloads that file once into ``data_root()/artifacts`` and checks
the entry's sha256 before anything reads it (and on every later use of the cached copy), so a moved alias
(``:latest``) or a tampered upload is an error, not silently different weights. Pin a version (``:v3``).

This module reads artifacts and imports nothing of the registry (:mod:`zoo.hub.pretrained` calls it); uploading, which
reads the registry, is :mod:`zoo.cli.publish`, so the two never import each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PureWindowsPath
from typing import Any

from safefiles import ChecksumError, atomic_path, data_root, file_lock, sha256_file

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
