"""Passage corpora for retrieval-augmented methods (:class:`PassageCorpus`): DPR's ``psgs_w100.tsv`` layout (``id,
text, title`` with a header) or JSON lines ``{"id", "title", "text"}``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from safefiles import atomic_write_text
from datamodules.files import require_file as _require_file


@dataclass
class PassageCorpus:
    """A retrieval corpus: parallel lists of passage ids, titles and texts.

    ``checksum`` (sha256 over every id, title and text) identifies the content, so an index built over another
    version of the corpus is detected as stale.
    """

    ids: list[str]
    titles: list[str]
    texts: list[str]
    name: str = "corpus"
    _checksum: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.titles) == len(self.texts)):
            raise ValueError(f"PassageCorpus {self.name!r}: {len(self.ids)} ids, {len(self.titles)} titles, "
                             f"{len(self.texts)} texts; they must be parallel")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def checksum(self) -> str:
        if self._checksum is None:
            h = hashlib.sha256()
            for i, t, x in zip(self.ids, self.titles, self.texts):
                h.update(f"{i}\x1f{t}\x1f{x}\x1e".encode())
            self._checksum = h.hexdigest()
        return self._checksum

    def passage(self, i: int) -> str:
        """Passage ``i`` as one string, ``"<title>: <text>"``, the form the retriever embeds."""
        return f"{self.titles[i]}: {self.texts[i]}" if self.titles[i] else self.texts[i]

    def head(self, n: int) -> PassageCorpus:
        """The first ``n`` passages (for quick runs); same order, so the checksum is that of the prefix."""
        return PassageCorpus(self.ids[:n], self.titles[:n], self.texts[:n], name=f"{self.name}[:{n}]")

    def write_jsonl(self, path: str | os.PathLike) -> None:
        """Write as JSON lines ``{"id", "title", "text"}``, atomically."""
        lines = (json.dumps({"id": i, "title": t, "text": x}, ensure_ascii=False) + "\n"
                 for i, t, x in zip(self.ids, self.titles, self.texts))
        atomic_write_text(Path(path), "".join(lines))


def read_passages(path: str | os.PathLike, max_passages: int | None = None) -> PassageCorpus:
    """Read a passage corpus: DPR's TSV (``id<TAB>text<TAB>title`` after a header line) or JSON lines.

    The format is chosen by extension (``.tsv`` or ``.jsonl``/``.json``). Errors name the file and line.
    """
    p = _require_file(path, "passage corpus")
    ids, titles, texts = [], [], []
    if p.suffix == ".tsv":
        with open(p, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != ["id", "text", "title"]:
                raise ValueError(f"{p}:1: expected the DPR header 'id<TAB>text<TAB>title', got {header!r}")
            for row in reader:
                if max_passages is not None and len(ids) >= max_passages:
                    break
                if len(row) < 3:
                    raise ValueError(f"{p}:{reader.line_num}: expected 3 tab-separated columns, got {len(row)}")
                ids.append(row[0])
                texts.append(row[1])
                titles.append(row[2])
    elif p.suffix in (".jsonl", ".json"):
        with open(p, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if max_passages is not None and len(ids) >= max_passages:
                    break
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{p}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ValueError(f"{p}:{lineno}: expected an object with a string 'text'")
                ids.append(str(row.get("id", len(ids))))
                titles.append(str(row.get("title", "")))
                texts.append(row["text"])
    else:
        raise ValueError(f"{p}: unknown corpus format {p.suffix!r}; expected .tsv (DPR) or .jsonl")
    if not ids:
        raise ValueError(f"{p}: the corpus has no passages")
    return PassageCorpus(ids, titles, texts, name=p.name)
