"""Where built datasets and indexes live, and how every cache file is written and checked.

One convention for the whole package: built data goes under :func:`data_root`; files are written atomically (a
temporary file in the same directory, then a rename), so a reader never sees a half-written file and an interrupted
build leaves the old file (or none) in place; manifests record each file's :func:`sha256_file`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def data_root() -> Path:
    """Root of built datasets and indexes: ``$METAZOO_DATA``, else ``~/.cache/metazoo``."""
    return Path(os.environ.get("METAZOO_DATA") or Path.home() / ".cache" / "metazoo")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
