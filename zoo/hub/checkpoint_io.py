"""The one way a checkpoint is read: local path or URL, always with ``torch.load(weights_only=True)``.

A Lightning checkpoint is a pickle, and unpickling can run any code the file names. ``weights_only=True`` makes
torch's unpickler refuse everything but tensors and plain containers, so a checkpoint from an untrusted place can
at worst fail to load. Lightning itself reads remote checkpoints with ``weights_only=False``; ``zoo`` therefore
routes every read through :func:`load_checkpoint` (the CLI installs :class:`SafeCheckpointIO` in the Trainer's
strategy, so ``--ckpt_path`` of ``fit``, ``validate``, ``test`` and ``predict`` comes here too).

URLs are downloaded into the cache first (:func:`safefiles.fetch`) and then read like a local file.
Registry weights are safetensors and never reach this module (``zoo.hub.pretrained`` reads them).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from safefiles import fetch, is_url


class UntrustedCheckpointError(ValueError):
    """A file that is not a checkpoint ``torch.load(weights_only=True)`` can read: not trusted, never executed."""


def _refusal_reason(err: Exception) -> str:
    """torch's explanation without its advice to retry with ``weights_only=False`` (which would run the code)."""
    lines = [line.strip() for line in str(err).splitlines()[1:]]
    keep = [line for line in lines if line and "weights_only" not in line and "file an issue" not in line
            and not line.startswith("Check the documentation")]
    return " ".join(keep) or type(err).__name__


def load_checkpoint(location: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint (a local path, or an ``http(s)://`` / ``file://`` URL) with ``weights_only=True``.

    Errors name the location: a missing file or a directory is a ``FileNotFoundError`` / ``IsADirectoryError``; a
    file torch's restricted unpickler refuses (random bytes, a truncated file, a pickle that names code to run) is
    an :class:`UntrustedCheckpointError` that says so, and nothing from it is executed.
    """
    source = str(location)
    path = fetch(source) if is_url(source) else Path(source).expanduser()
    where = source if str(path) == source else f"{source} (downloaded to {path})"
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {where} is a directory; pass the .ckpt file inside it (for a run "
                                f"directory, <run>/checkpoints/last.ckpt or best-*.ckpt)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {where} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError) as err:
        raise UntrustedCheckpointError(
            f"checkpoint {where} is not trusted and was not loaded: it is not a checkpoint that loads with "
            f"weights_only=True (tensors and plain values only), so it is either not a checkpoint or it would run "
            f"code when unpickled ({_refusal_reason(err)})") from None
    if not isinstance(checkpoint, dict):
        raise UntrustedCheckpointError(f"checkpoint {where}: expected a dict (a Lightning checkpoint), got "
                                       f"{type(checkpoint).__name__}")
    return checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint plugin with reads going through :func:`load_checkpoint`; saving is unchanged."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError("SafeCheckpointIO never loads with weights_only=False")
        return load_checkpoint(path, map_location=map_location or "cpu")


def use_safe_checkpoint_io(trainer: Any) -> None:
    """Make ``trainer`` read checkpoints through :func:`load_checkpoint` (unless a custom plugin was configured)."""
    strategy = trainer.strategy
    current = getattr(strategy, "_checkpoint_io", None)
    if current is None or type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = SafeCheckpointIO()
