"""Bao et al. (ICLR 2020) benchmark files (``YujiaBao/Distributional-Signatures``) with their published class splits
(:class:`BaoTextDataModule`).

JSON lines, one example per line, ``{"text": [tokens], "label": int}``; FewRel adds ``"head": [start, end]`` and
``"tail": [start, end]`` token spans (end inclusive, as that code's position features read them). Texts are
truncated to 500 tokens as there. Their class splits for HuffPost (20/5/16), Amazon (10/5/9), Reuters (15/5/11),
20 Newsgroups (8/5/7) and FewRel (65/5/10) are in :data:`BAO_SPLITS`. RCV1 ships paths instead of texts (licence)
and is not supported. The reader names the file and line of the first malformed record it meets.
"""

from __future__ import annotations

import os
from typing import Any

from datamodules.episodes import Source
from datamodules.files import json_lines as _json_lines
from datamodules.files import require_file as _require_file
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.source import TextRecords, split_sources, token_span

MAX_TOKENS = 500  # Bao et al.'s loader truncates every text to 500 tokens

# -- published class splits -------------------------------------------------------------------------------------

# Bao et al. label ids of 20 Newsgroups and Amazon (src/dataset/loader.py); HuffPost, Reuters and FewRel files
# carry integer labels only, so their classes are named by id.
BAO_20NEWS_NAMES = {
    0: "talk.politics.mideast", 1: "sci.space", 2: "misc.forsale", 3: "talk.politics.misc", 4: "comp.graphics",
    5: "sci.crypt", 6: "comp.windows.x", 7: "comp.os.ms-windows.misc", 8: "talk.politics.guns",
    9: "talk.religion.misc", 10: "rec.autos", 11: "sci.med", 12: "comp.sys.mac.hardware", 13: "sci.electronics",
    14: "rec.sport.hockey", 15: "alt.atheism", 16: "rec.motorcycles", 17: "comp.sys.ibm.pc.hardware",
    18: "rec.sport.baseball", 19: "soc.religion.christian",
}
BAO_AMAZON_NAMES = {
    0: "Amazon_Instant_Video", 1: "Apps_for_Android", 2: "Automotive", 3: "Baby", 4: "Beauty", 5: "Books",
    6: "CDs_and_Vinyl", 7: "Cell_Phones_and_Accessories", 8: "Clothing_Shoes_and_Jewelry", 9: "Digital_Music",
    10: "Electronics", 11: "Grocery_and_Gourmet_Food", 12: "Health_and_Personal_Care", 13: "Home_and_Kitchen",
    14: "Kindle_Store", 15: "Movies_and_TV", 16: "Musical_Instruments", 17: "Office_Products",
    18: "Patio_Lawn_and_Garden", 19: "Pet_Supplies", 20: "Sports_and_Outdoors", 21: "Tools_and_Home_Improvement",
    22: "Toys_and_Games", 23: "Video_Games",
}


def _split_by_prefix(names: dict[int, str]) -> dict[str, list[int]]:
    """20 Newsgroups split of Bao et al.: train = sci.* and rec.*, val = comp.*, test = the rest."""
    top = {i: n[: n.find(".")] for i, n in names.items()}
    return {"train": [i for i, t in top.items() if t in ("sci", "rec")],
            "val": [i for i, t in top.items() if t == "comp"],
            "test": [i for i, t in top.items() if t not in ("sci", "rec", "comp")]}


BAO_SPLITS: dict[str, dict[str, list[int]]] = {
    "huffpost": {"train": list(range(20)), "val": list(range(20, 25)), "test": list(range(25, 41))},
    "amazon": {"train": [2, 3, 4, 7, 11, 12, 13, 18, 19, 20], "val": [1, 22, 23, 6, 9],
               "test": [0, 5, 14, 15, 8, 10, 16, 17, 21]},
    "reuters": {"train": list(range(15)), "val": list(range(15, 20)), "test": list(range(20, 31))},
    "20news": _split_by_prefix(BAO_20NEWS_NAMES),
    "fewrel": {"train": [0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16, 19, 21, 22, 24, 25, 26, 27, 28, 30,
                         31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 46, 48, 49, 50, 52, 53, 56, 57,
                         58, 59, 61, 62, 63, 64, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78],
               "val": [7, 9, 17, 18, 20], "test": [23, 29, 42, 47, 51, 54, 55, 60, 65, 79]},
}
BAO_CLASS_NAMES = {"amazon": BAO_AMAZON_NAMES, "20news": BAO_20NEWS_NAMES}

def read_bao_jsonl(path: str | os.PathLike, max_tokens: int = MAX_TOKENS, spans: bool | None = None,
                   class_names: dict[int, str] | None = None) -> TextRecords:
    """Read a Bao et al. JSON-lines file (``{"text": [tokens], "label": int}`` per line).

    Args:
        path: e.g. ``huffpost.json``, ``amazon.json``, ``reuters.json``, ``20news.json``, ``fewrel.json``.
        max_tokens: texts are cut to this many tokens before joining, as Bao et al.'s loader does (500).
        spans: require FewRel's ``head``/``tail`` spans (True), forbid nothing (None: keep them when present on
            every line), or ignore them (False).
        class_names: readable names for label ids; ids without a name are named ``"<file stem>-<id>"``.

    Blank lines are skipped; anything else that is not such a record raises ``ValueError("<path>:<line>: ...")``.
    A span is rebased onto the truncated text only if it still fits inside it; otherwise the line is an error,
    since an entity cut off the text cannot be marked.
    """
    p = _require_file(path, "Bao et al. JSON-lines file")
    texts: list[str] = []
    labels: list[int] = []
    heads: list[list[int]] = []
    tails: list[list[int]] = []
    tokens_field: list[list[str]] = []
    with_spans = 0
    for where, row in _json_lines(p):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if "text" not in row:
            hint = " (RCV1 ships 'path' instead of texts; it is not supported)" if "path" in row else ""
            raise ValueError(f"{where}: missing key 'text'{hint}")
        tokens = row["text"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{where}: 'text' must be a list of token strings")
        if not tokens:
            raise ValueError(f"{where}: 'text' is empty")
        label = row.get("label")
        if isinstance(label, bool) or not isinstance(label, int):
            raise ValueError(f"{where}: 'label' must be an integer, got {label!r}")
        tokens = tokens[:max_tokens]
        has = "head" in row or "tail" in row
        if spans is True and not has:
            raise ValueError(f"{where}: FewRel lines need 'head' and 'tail' spans")
        if has and spans is not False:
            if "head" not in row or "tail" not in row:
                raise ValueError(f"{where}: a line with one of 'head'/'tail' needs both")
            heads.append(token_span(row["head"], len(tokens), where, "head"))
            tails.append(token_span(row["tail"], len(tokens), where, "tail"))
            tokens_field.append(tokens)
            with_spans += 1
        texts.append(" ".join(tokens))
        labels.append(label)
    if not texts:
        raise ValueError(f"{p}: no examples (the file is empty)")
    fields: dict[str, Any] = {}
    if with_spans:
        if with_spans != len(texts):
            raise ValueError(f"{p}: {with_spans} of {len(texts)} lines have head/tail spans; all or none must")
        fields = {"head": heads, "tail": tails, "tokens": tokens_field}
    names = {c: (class_names or {}).get(c, f"{p.stem}-{c}") for c in sorted(set(labels))}
    return TextRecords(texts, labels, names, fields)


class BaoTextDataModule(TextEpisodicDataModule):
    """A Bao et al. (2020) benchmark file with their published class split.

    Args:
        data_path: the JSON-lines file (e.g. ``data/huffpost.json``).
        dataset: ``huffpost`` | ``amazon`` | ``reuters`` | ``20news`` | ``fewrel`` (selects the split).
        max_tokens: truncation length of Bao et al.'s loader (500).
        **kwargs: see :class:`TextEpisodicDataModule` (episode setting, corpus, eval seed).

    Bao et al.'s protocol is 5-way 1/5-shot with 25 queries per class, 100 training episodes per epoch,
    100 validation and 1000 test episodes.
    """

    def __init__(self, data_path: str, dataset: str, max_tokens: int = MAX_TOKENS, **kwargs: Any):
        super().__init__(**kwargs)
        if dataset not in BAO_SPLITS:
            raise ValueError(f"dataset must be one of {sorted(BAO_SPLITS)}, got {dataset!r}")
        self.data_path, self.dataset_name, self.max_tokens = data_path, dataset, max_tokens

    @property
    def name(self) -> str:
        return f"Bao-{self.dataset_name}"

    def build_sources(self) -> dict[str, Source]:
        records = read_bao_jsonl(self.data_path, self.max_tokens, spans=True if self.dataset_name == "fewrel"
                                 else None, class_names=BAO_CLASS_NAMES.get(self.dataset_name))
        return split_sources(records, BAO_SPLITS[self.dataset_name], f"{self.data_path} ({self.name})")
