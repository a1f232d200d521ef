"""HuffPost headlines from the raw News Category file (``News_Category_Dataset_v2.json``, ``{"category",
"headline", "short_description", ...}`` per line) with the KGML split 25/6/10 that RAML uses
(:data:`KGML_HUFFPOST`, :class:`HuffPostKGMLDataModule`).
"""

from __future__ import annotations

import os
from typing import Any

from datamodules.episodes import Source
from datamodules.files import json_lines as _json_lines
from datamodules.files import require_file as _require_file
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.source import TextRecords, split_sources

# KGML / RAML HuffPost split (Carolmelon/RAML data_fewshot/convert_raw_to_dict_data.py): category -> index, and
# the 25/6/10 class split over those indices. Categories are matched lower-cased.
KGML_HUFFPOST_INDEX = {
    "crime": 0, "entertainment": 1, "world news": 2, "impact": 3, "politics": 4, "weird news": 5,
    "black voices": 6, "women": 7, "comedy": 8, "queer voices": 9, "sports": 10, "business": 11, "travel": 12,
    "media": 13, "tech": 14, "religion": 15, "science": 16, "latino voices": 17, "education": 18, "college": 19,
    "parents": 20, "arts & culture": 21, "style": 22, "green": 23, "taste": 24, "healthy living": 25,
    "the worldpost": 26, "good news": 27, "worldpost": 28, "fifty": 29, "arts": 30, "wellness": 31,
    "parenting": 32, "home & living": 33, "style & beauty": 34, "divorce": 35, "weddings": 36,
    "food & drink": 37, "money": 38, "environment": 39, "culture & arts": 40,
}
KGML_HUFFPOST = {
    "train": [30, 25, 36, 4, 14, 22, 28, 7, 20, 8, 9, 3, 15, 34, 24, 29, 1, 6, 0, 16, 37, 5, 33, 35, 27],
    "val": [17, 13, 18, 2, 40, 39],
    "test": [32, 11, 23, 19, 10, 26, 12, 31, 21, 38],
}


def read_huffpost_raw(path: str | os.PathLike, text_field: str = "headline",
                      index: dict[str, int] | None = None) -> TextRecords:
    """Read the raw HuffPost News Category JSON lines, labelled with KGML's category indices.

    Args:
        text_field: ``"headline"`` (what RAML and KGML classify) or ``"headline+description"`` (headline, a
            space, then ``short_description``).
        index: category (lower-cased) -> class id; KGML's map by default. An unknown category is an error,
            because silently dropping it would change the class split.
    """
    p = _require_file(path, "HuffPost News Category file")
    if text_field not in ("headline", "headline+description"):
        raise ValueError(f"text_field must be 'headline' or 'headline+description', got {text_field!r}")
    index = index or KGML_HUFFPOST_INDEX
    texts, labels = [], []
    for where, row in _json_lines(p):
        if not isinstance(row, dict) or not isinstance(row.get("category"), str) \
                or not isinstance(row.get("headline"), str):
            raise ValueError(f"{where}: expected an object with string 'category' and 'headline'")
        cat = row["category"].strip().lower()
        if cat not in index:
            raise ValueError(f"{where}: category {row['category']!r} is not one of the {len(index)} "
                             f"categories of the split (is this News_Category_Dataset_v2?)")
        text = row["headline"].strip()
        if text_field == "headline+description":
            text = f"{text} {str(row.get('short_description', '')).strip()}".strip()
        if not text:
            continue  # a few headlines are empty; they carry nothing to classify
        texts.append(text)
        labels.append(index[cat])
    if not texts:
        raise ValueError(f"{p}: no examples (the file is empty)")
    names = {i: c for c, i in index.items() if i in set(labels)}
    return TextRecords(texts, labels, names)


class HuffPostKGMLDataModule(TextEpisodicDataModule):
    """HuffPost headlines (raw News Category file) with the KGML 25/6/10 class split RAML reports on.

    Args:
        data_path: ``News_Category_Dataset_v2.json``.
        text_field: ``"headline"`` (RAML/KGML) or ``"headline+description"``.
        **kwargs: see :class:`TextEpisodicDataModule`.

    The KGML protocol: 5-way 1/5-shot, 5 queries per class, 600 test tasks.
    """

    def __init__(self, data_path: str, text_field: str = "headline", **kwargs: Any):
        super().__init__(**kwargs)
        self.data_path, self.text_field = data_path, text_field

    @property
    def name(self) -> str:
        return "HuffPost-KGML"

    def build_sources(self) -> dict[str, Source]:
        records = read_huffpost_raw(self.data_path, self.text_field)
        return split_sources(records, KGML_HUFFPOST, f"{self.data_path} ({self.name})")
