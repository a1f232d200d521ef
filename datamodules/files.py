"""Reading users' record files with errors that name the file and line: shared by every modality's readers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, or FileNotFoundError saying which file (``what``) is missing."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what}: {p} does not exist (or is not a file)")
    return p


def json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """``("<file>:<line>", parsed value)`` for each non-blank line of a JSON-lines file; bad JSON names the line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
            yield where, row
