"""Few-shot text classification data: sources for the published benchmark files, and passage corpora.

Formats read here (each reader names the file and line of the first malformed record it meets):

* **Bao et al. (ICLR 2020) JSON lines** (``YujiaBao/Distributional-Signatures``): one example per line,
  ``{"text": [tokens], "label": int}``; FewRel adds ``"head": [start, end]`` and ``"tail": [start, end]`` token
  spans (end inclusive, as that code's position features read them). Texts are truncated to 500 tokens as there.
  Their class splits for HuffPost (20/5/16), Amazon (10/5/9), Reuters (15/5/11), 20 Newsgroups (8/5/7) and
  FewRel (65/5/10) are in :data:`BAO_SPLITS`. RCV1 ships paths instead of texts (licence) and is not supported.
* **The raw HuffPost News Category file** (``News_Category_Dataset_v2.json``, ``{"category", "headline",
  "short_description", ...}`` per line), with the KGML split 25/6/10 that RAML uses (:data:`KGML_HUFFPOST`).
* **FewRel 1.0 JSON** (``train_wiki.json`` / ``val_wiki.json``): ``{relation_id: [{"tokens", "h", "t"}, ...]}``
  with ``h = [name, wikidata_id, [[token indices], ...]]``.
* **Passage corpora** for retrieval (:class:`PassageCorpus`): DPR's ``psgs_w100.tsv`` layout (``id, text,
  title`` with a header) or JSON lines ``{"id", "title", "text"}``.

Items are plain strings, so any text encoder takes them as they come. What a method needs beyond the text (the
tokens and entity spans of a relation instance) rides along as per-item ``fields`` of :class:`TextSource`, and
:class:`TextEpisodicDataModule` gathers them into ``Episode.extras`` aligned with ``support + query`` order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from datamodules.base import EpisodicDataModule
from datamodules.cache import atomic_write_text
from datamodules.episodes import SPLITS, ListSource, Source
from datamodules.files import json_lines as _json_lines
from datamodules.files import require_file as _require_file

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


def check_split(split: dict[str, Sequence[int]], where: str) -> None:
    """Raise unless ``split`` names train/val/test class lists that are pairwise disjoint."""
    missing = [s for s in SPLITS if s not in split]
    if missing:
        raise ValueError(f"{where}: class split has no {missing} part")
    seen: dict[int, str] = {}
    for s in SPLITS:
        for c in split[s]:
            if c in seen:
                raise ValueError(f"{where}: class {c} is in both the {seen[c]} and the {s} split")
            seen[int(c)] = s


# -- sources ----------------------------------------------------------------------------------------------------

class TextSource(ListSource):
    """Texts (strings) with labels, plus optional per-item ``fields`` (entity spans, tokens, ...).

    ``fields[name]`` is a tensor with one row per item (gathered with one index) or a list (gathered item by
    item). :meth:`TextEpisodicDataModule.episode_extras` copies them into ``Episode.extras[name]``.
    """

    def __init__(self, texts: Sequence[str], labels: torch.Tensor | Sequence[int],
                 class_names: dict[int, str] | None = None, fields: dict[str, Any] | None = None):
        super().__init__(list(texts), torch.as_tensor(labels, dtype=torch.long), class_names)
        self.fields = dict(fields or {})
        for name, values in self.fields.items():
            if len(values) != len(self.items):
                raise ValueError(f"TextSource: field {name!r} has {len(values)} rows for {len(self.items)} items")

    def gather_fields(self, indices: torch.Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, values in self.fields.items():
            out[name] = values[indices] if isinstance(values, torch.Tensor) else [values[int(i)] for i in indices]
        return out

    def subset(self, classes: Sequence[int]) -> TextSource:
        """The items whose label is in ``classes`` (a class split), fields included."""
        wanted = torch.as_tensor(list(classes), dtype=torch.long)
        keep = torch.isin(self.labels, wanted).nonzero().flatten()
        names = {c: n for c, n in self.class_names.items() if c in set(wanted.tolist())}
        return TextSource([self.items[int(i)] for i in keep], self.labels[keep], names, self.gather_fields(keep))


@dataclass
class TextRecords:
    """What a reader returns: texts, integer labels, readable class names and per-item fields."""

    texts: list[str]
    labels: list[int]
    class_names: dict[int, str]
    fields: dict[str, Any] = field(default_factory=dict)

    def source(self) -> TextSource:
        fields = {k: (torch.tensor(v, dtype=torch.long) if k in ("head", "tail") else v)
                  for k, v in self.fields.items()}
        return TextSource(self.texts, self.labels, self.class_names, fields)


def _span(value: Any, n_tokens: int, where: str, key: str) -> list[int]:
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) for v in value)):
        raise ValueError(f"{where}: {key!r} must be [start, end] token indices, got {value!r}")
    start, end = value
    if not 0 <= start <= end < n_tokens:
        raise ValueError(f"{where}: {key!r} span {value} is outside the {n_tokens} tokens (end is inclusive)")
    return [start, end]


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
            heads.append(_span(row["head"], len(tokens), where, "head"))
            tails.append(_span(row["tail"], len(tokens), where, "tail"))
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


def _fewrel_span(entity: Any, n_tokens: int, where: str, key: str) -> list[int]:
    """FewRel's ``[name, wikidata_id, [[indices], ...]]`` -> inclusive [start, end] of the first mention."""
    try:
        if not isinstance(entity, list) or not isinstance(entity[2], list):
            raise TypeError
        first = entity[2][0]
        start, end = int(min(first)), int(max(first))
    except (TypeError, IndexError, ValueError, KeyError):
        raise ValueError(f"{where}: {key!r} must be [name, id, [[token indices], ...]], got {entity!r}") from None
    if not 0 <= start <= end < n_tokens:
        raise ValueError(f"{where}: {key!r} mention {first} is outside the {n_tokens} tokens")
    return [start, end]


def read_fewrel_json(path: str | os.PathLike, label_offset: int = 0,
                     relation_names: dict[str, str] | None = None) -> TextRecords:
    """Read a FewRel 1.0 file (``{relation_id: [{"tokens", "h", "t"}, ...]}``).

    Relations get integer ids ``label_offset + i`` in file order, so train and val files can share one id space;
    their readable names are ``"P931 (place served by transport hub)"`` when ``relation_names`` (FewRel's
    ``pid2name.json``) is given. Fields: ``tokens``, ``head``/``tail`` inclusive spans of the first mention, and
    ``head_id``/``tail_id`` the entities' Wikidata ids (for a QID-to-type file).
    FewRel files hold one JSON document (often on one line), so a structural error names the relation and the
    instance position; a syntax error names the line and column.
    """
    p = _require_file(path, "FewRel JSON file")
    with open(p, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{p}: expected a non-empty object mapping relation ids to instance lists")
    texts, labels, heads, tails, tokens_field, head_ids, tail_ids = [], [], [], [], [], [], []
    names: dict[int, str] = {}
    for i, (rel, instances) in enumerate(data.items()):
        label = label_offset + i
        desc = (relation_names or {}).get(rel)
        names[label] = f"{rel} ({desc})" if desc else rel
        if not isinstance(instances, list) or not instances:
            raise ValueError(f"{p}: relation {rel!r} must map to a non-empty list of instances")
        for j, inst in enumerate(instances):
            where = f"{p}: relation {rel!r}, instance {j}"
            if not isinstance(inst, dict) or not {"tokens", "h", "t"} <= set(inst):
                raise ValueError(f"{where}: expected an object with 'tokens', 'h' and 't'")
            tokens = inst["tokens"]
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
                raise ValueError(f"{where}: 'tokens' must be a non-empty list of strings")
            heads.append(_fewrel_span(inst["h"], len(tokens), where, "h"))
            tails.append(_fewrel_span(inst["t"], len(tokens), where, "t"))
            tokens_field.append(tokens)
            head_ids.append(str(inst["h"][1]))
            tail_ids.append(str(inst["t"][1]))
            texts.append(" ".join(tokens))
            labels.append(label)
    return TextRecords(texts, labels, names, {"head": heads, "tail": tails, "tokens": tokens_field,
                                              "head_id": head_ids, "tail_id": tail_ids})


def read_pid2name(path: str | os.PathLike) -> dict[str, str]:
    """FewRel's ``pid2name.json`` (``{"P931": ["place served by transport hub", "description"], ...}``)."""
    p = _require_file(path, "FewRel pid2name file")
    with open(p, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected an object mapping relation ids to [name, description]")
    return {k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in data.items()}


# -- passage corpora --------------------------------------------------------------------------------------------

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


# -- data modules -----------------------------------------------------------------------------------------------

class TextEpisodicDataModule(EpisodicDataModule):
    """Episodes of texts; a dataset subclass implements ``build_sources`` as for images.

    Adds to the base: per-item source fields copied into ``Episode.extras`` (support rows first, then query
    rows, both class-major, exactly as ``support_x + query_x``), an optional passage corpus for retrieval-augmented
    methods (:meth:`passage_corpus`).

    Args:
        corpus_path: a passage corpus (DPR TSV or JSON lines) for retrieval; ``None`` when no method needs one.
        max_passages: read only the first passages of ``corpus_path`` (quick runs).
        **kwargs: the episode setting of :class:`EpisodicDataModule`.
    """

    def __init__(self, corpus_path: str | None = None, max_passages: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.corpus_path, self.max_passages = corpus_path, max_passages
        self._corpus: PassageCorpus | None = None

    def episode_extras(self, source: Source, items: Any, classes: Any) -> dict:
        return source.gather_fields(items) if isinstance(source, TextSource) and source.fields else {}

    def passage_corpus(self) -> PassageCorpus | None:
        """The retrieval corpus of this dataset, or None; read once and kept."""
        if self._corpus is None and self.corpus_path is not None:
            self._corpus = read_passages(self.corpus_path, self.max_passages)
        return self._corpus


def _split_sources(records: TextRecords, split: dict[str, list[int]], where: str) -> dict[str, Source]:
    check_split(split, where)
    present = set(records.labels)
    wanted = {c for s in SPLITS for c in split[s]}
    unknown = sorted(present - wanted)
    if unknown:
        raise ValueError(f"{where}: labels {unknown[:10]} are in no class split; is the dataset name right?")
    absent = sorted(wanted - present)
    if absent:
        raise ValueError(f"{where}: split classes {absent[:10]} have no examples in the file")
    src = records.source()
    return {s: src.subset(split[s]) for s in SPLITS}


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
        return _split_sources(records, BAO_SPLITS[self.dataset_name], f"{self.data_path} ({self.name})")


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
        return _split_sources(records, KGML_HUFFPOST, f"{self.data_path} ({self.name})")


class FewRelDataModule(TextEpisodicDataModule):
    """FewRel 1.0 (``train_wiki.json``: 64 relations, ``val_wiki.json``: 16 relations, 700 instances each).

    Args:
        root: the directory holding the files.
        train_file / val_file: relation files for meta-training and validation.
        test_file: relation file for testing. FewRel's own test set is hidden behind CodaLab, so by default
            (``None``) the test split is ``val_file``'s relations, the practice of published FewRel 1.0 numbers;
            a warning says so, because model selection and test then share relations. Give a re-split file
            (as D-Proto's ``test_wiki.json``) to keep them apart.
        pid2name: optional ``pid2name.json`` for readable relation names.
        **kwargs: see :class:`TextEpisodicDataModule`.

    Extras of every episode: ``tokens`` and inclusive ``head``/``tail`` spans ``[N*(K+Q), 2]``.
    """

    def __init__(self, root: str, train_file: str = "train_wiki.json", val_file: str = "val_wiki.json",
                 test_file: str | None = None, pid2name: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.root, self.train_file, self.val_file, self.test_file = root, train_file, val_file, test_file
        self.pid2name = pid2name

    @property
    def name(self) -> str:
        return "FewRel"

    def build_sources(self) -> dict[str, Source]:
        root = Path(self.root).expanduser()
        names = read_pid2name(root / self.pid2name) if self.pid2name else None
        train = read_fewrel_json(root / self.train_file, 0, names)
        val = read_fewrel_json(root / self.val_file, len(train.class_names), names)
        if self.test_file is None:
            warnings.warn(f"FewRel: no test_file, so the test split is {self.val_file}'s relations (FewRel 1.0 "
                          "practice; its test set is hidden); validation and test share relations", stacklevel=2)
            test = val
        else:
            test = read_fewrel_json(root / self.test_file, len(train.class_names) + len(val.class_names), names)
        parts = {"train": (self.train_file, train), "val": (self.val_file, val)}
        if self.test_file is not None:
            parts["test"] = (self.test_file, test)
        seen: dict[str, str] = {}
        for file, records in parts.values():
            for name in records.class_names.values():
                pid = name.split(" ")[0]
                if pid in seen:
                    raise ValueError(f"FewRel: relation {pid} is in both {seen[pid]} and {file}; the splits must "
                                     "be relation-disjoint")
                seen[pid] = file
        return {"train": train.source(), "val": val.source(), "test": test.source()}
