"""FewRel 1.0 and 2.0 files as relation episodes, plain and with NOTA (the user's FewRel directory; nothing is
downloaded).

FewRel 1.0 JSON (``train_wiki.json`` / ``val_wiki.json``: ``{relation_id: [{"tokens", "h", "t"}, ...]}`` with
``h = [name, wikidata_id, [[token indices], ...]]``) is read by :func:`read_fewrel_json` (its errors name the file
and the first bad relation and instance). :class:`FewRelDataModule` gives plain episodes of it, and
:class:`FewRelNOTADataModule` NOTA episodes with the same splits: ``train_wiki.json`` (64 relations),
``val_wiki.json`` (16) and a test file. FewRel 1.0's test set is hidden, so give a re-split file (as D-Proto's
``test_wiki.json``), or FewRel 2.0's ``val_pubmed.json`` (10 biomedical relations) for a cross-domain test: its
format is FewRel 1.0's. Splits must be relation-disjoint.

GPAM's debiased views replace an entity by a type string: FewRel gives each entity a Wikidata id, and its type
("instance of" label) must come from the user's disk, as ``qid_types`` (a JSON object ``{"Q42": "human", ...}``);
entities it does not list, or every entity without it, get ``generic_type``. The context-debiased view needs WordNet
(``wordnet_root``, found automatically) unless ``synonym_rate`` is 0.

:class:`FewRelNYTSemEvalDataModule` needs no user files: FewRel 2.0's NYT and SemEval-2010 validation files ship with
the package (``datamodules/relations/data/fewrel/``, MIT licence beside them, sha256 checked on every read), split into
relation-disjoint train / validation / test relations by the fixed lists of :data:`NYT_SEMEVAL_SPLITS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from datamodules.episodes import Source
from datamodules.files import require_file as _require_file
from datamodules.relations.base import RelationDataModule
from datamodules.relations.views import SynonymTable, _unit, context_debiased
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.source import TextRecords, TextSource
from datamodules.wordnet import find_wordnet, read_wordnet


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


def read_qid_types(path: str | Path) -> dict[str, str]:
    """A QID-to-type file: a JSON object mapping Wikidata ids to type strings; errors name the file and entry."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"QID-to-type file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected an object mapping Wikidata ids to type strings")
    for qid, t in data.items():
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{p}: entry {qid!r} must map to a non-empty string, got {t!r}")
    return data


def add_view_fields(sources: dict[str, TextSource], types: dict[str, str], generic_type: str,
                    table: SynonymTable | None, synonym_rate: float) -> None:
    """Give every source the fields of GPAM's views (in place): ``head_type`` / ``tail_type`` from ``types`` by the
    entity id (``generic_type`` where it has none) and ``context_tokens`` (WordNet synonyms; a copy of the tokens
    without ``table``). A source that two splits share is done once."""
    done: set[int] = set()
    for src in sources.values():
        if id(src) in done:
            continue
        f = src.fields
        f["head_type"] = [types.get(q, generic_type) for q in f["head_id"]]
        f["tail_type"] = [types.get(q, generic_type) for q in f["tail_id"]]
        if table is None:
            f["context_tokens"] = [list(t) for t in f["tokens"]]
        else:
            f["context_tokens"] = [context_debiased(t, list(map(int, h)), list(map(int, tl)), synonym_rate,
                                                    f"{i}/{' '.join(t)}", table)
                                   for i, (t, h, tl) in enumerate(zip(f["tokens"], f["head"], f["tail"]))]
        done.add(id(src))


class FewRelNOTADataModule(RelationDataModule, FewRelDataModule):
    """FewRel relation episodes with NOTA queries (D-Proto protocol by default).

    Args:
        root: the directory holding the FewRel files.
        train_file / val_file / test_file: relation files (``test_file``: a FewRel 1.0 re-split or FewRel 2.0's
            ``val_pubmed.json``; None tests on ``val_file``'s relations, with a warning).
        pid2name: optional ``pid2name.json`` for readable relation names.
        qid_types: optional JSON ``{wikidata id: type string}`` for the head/tail-debiased views.
        generic_type: the type string of entities without one.
        wordnet_root: WordNet for the synonyms of the context-debiased view (None: found automatically).
        synonym_rate: share of context words replaced by a synonym (0: no WordNet needed).
        **kwargs: NOTA rates and the episode setting, see :class:`datamodules.relations.RelationDataModule`.
    """

    def __init__(self, root: str, train_file: str = "train_wiki.json", val_file: str = "val_wiki.json",
                 test_file: str | None = "test_wiki.json", pid2name: str | None = None, qid_types: str | None = None,
                 generic_type: str = "entity", wordnet_root: str | None = None, synonym_rate: float = 0.15,
                 **kwargs: Any):
        super().__init__(root=root, train_file=train_file, val_file=val_file, test_file=test_file,
                         pid2name=pid2name, **kwargs)
        if not 0 <= synonym_rate <= 1:
            raise ValueError(f"FewRelNOTA synonym_rate must be in [0, 1], got {synonym_rate}")
        self.qid_types, self.generic_type = qid_types, generic_type
        self.wordnet_root, self.synonym_rate = wordnet_root, synonym_rate

    @property
    def name(self) -> str:
        return "FewRel-NOTA"

    def build_sources(self) -> dict[str, Source]:
        sources = FewRelDataModule.build_sources(self)
        types = read_qid_types(Path(self.root).expanduser() / self.qid_types) if self.qid_types else {}
        table = SynonymTable(read_wordnet(find_wordnet(self.wordnet_root))) if self.synonym_rate > 0 else None
        add_view_fields(sources, types, self.generic_type, table, self.synonym_rate)
        return sources


# -- FewRel 2.0 NYT + SemEval-2010, shipped ----------------------------------------------------------------------

SHIPPED = Path(__file__).resolve().parent / "data" / "fewrel"
SHIPPED_SHA256 = {
    "val_nyt.json": "b519adc61a2bab0f05178e33a3cd8f284338b635629493e9e09616ba81bb428e",
    "val_semeval.json": "fd79cf35481f6596c23b92cd3ded3265481f3027a4b78d99921104f8fe632eb5",
    "pid2name.json": "eeedd25512a8e4c2bc06b78009836d27de81807bcba6ed929debd5cd713c07ea",
}
# Relation-disjoint splits of the 42 relations, fixed. NYT (25 Wikidata properties): in file order, positions i with
# i mod 4 in {0, 1} train, 2 validation, 3 test (13 / 6 / 6). SemEval (17 directed relations): both directions of a
# relation type stay in one split (so no relation is seen in training with its arguments swapped); Cause-Effect,
# Component-Whole, Entity-Destination (one direction in the file), Entity-Origin and Member-Collection train,
# Content-Container and Instrument-Agency validate, Message-Topic and Product-Producer test (9 / 4 / 4).
# Every split mixes news (NYT) and SemEval's web sentences: 22 train, 10 validation, 10 test relations.
NYT_SEMEVAL_SPLITS: dict[str, dict[str, list[str]]] = {
    "train": {"val_nyt.json": ["P413", "P463", "P272", "P749", "P2094", "P410", "P50", "P108", "P40", "P172", "P171",
                               "P1441", "P186"],
              "val_semeval.json": ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Component-Whole(e1,e2)",
                                   "Component-Whole(e2,e1)", "Entity-Destination(e1,e2)", "Entity-Origin(e1,e2)",
                                   "Entity-Origin(e2,e1)", "Member-Collection(e1,e2)", "Member-Collection(e2,e1)"]},
    "val": {"val_nyt.json": ["P921", "P509", "P54", "P166", "P452", "P1056"],
            "val_semeval.json": ["Content-Container(e1,e2)", "Content-Container(e2,e1)", "Instrument-Agency(e1,e2)",
                                 "Instrument-Agency(e2,e1)"]},
    "test": {"val_nyt.json": ["P344", "P414", "P161", "P162", "P412", "P25"],
             "val_semeval.json": ["Message-Topic(e1,e2)", "Message-Topic(e2,e1)", "Product-Producer(e1,e2)",
                                  "Product-Producer(e2,e1)"]},
}


def verified_shipped(name: str, root: Path = SHIPPED) -> Path:
    """The path of shipped file ``name`` after checking its sha256 (a modified or truncated copy is an error)."""
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"shipped FewRel file {path} is missing (is the package installed with its data?)")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != SHIPPED_SHA256[name]:
        raise ValueError(f"shipped FewRel file {path} has sha256 {got}, expected {SHIPPED_SHA256[name]}: the file was "
                         "modified; reinstall the package")
    return path


def nyt_semeval_sources(max_per_relation: int | None = None, root: Path = SHIPPED) -> dict[str, TextSource]:
    """The three relation-disjoint splits of :data:`NYT_SEMEVAL_SPLITS` as sources with FewRel's fields.

    ``max_per_relation`` keeps that many instances of each relation, chosen by a hash of (relation, position), so
    the same ones every time (SemEval's 110-1,135 per relation become at most that many; NYT has 100 each).
    """
    if max_per_relation is not None and max_per_relation < 1:
        raise ValueError(f"max_per_relation must be a positive number of instances, got {max_per_relation}")
    names = read_pid2name(verified_shipped("pid2name.json", root))
    records = {f: read_fewrel_json(verified_shipped(f, root), 0, names) for f in ("val_nyt.json", "val_semeval.json")}
    out: dict[str, TextSource] = {}
    label = 0
    for split, files in NYT_SEMEVAL_SPLITS.items():
        texts, labels, fields, class_names = [], [], {k: [] for k in ("tokens", "head", "tail", "head_id", "tail_id")}, {}
        for file, relations in files.items():
            rec: TextRecords = records[file]
            by_id = {name.split(" ")[0]: i for i, name in rec.class_names.items()}
            for rel in relations:
                if rel not in by_id:
                    raise ValueError(f"{root / file}: relation {rel!r} of the {split} split is not in the file")
                idx = [j for j, y in enumerate(rec.labels) if int(y) == by_id[rel]]
                if max_per_relation is not None:
                    idx = sorted(sorted(idx, key=lambda j: _unit(rel, j))[:max_per_relation])
                class_names[label] = rec.class_names[by_id[rel]]
                for j in idx:
                    texts.append(rec.texts[j])
                    labels.append(label)
                    for k in fields:
                        fields[k].append(rec.fields[k][j])
                label += 1
        fields["head"] = torch.tensor(fields["head"], dtype=torch.long).reshape(-1, 2)
        fields["tail"] = torch.tensor(fields["tail"], dtype=torch.long).reshape(-1, 2)
        out[split] = TextSource(texts, labels, class_names, fields)
    return out


class FewRelNYTSemEvalDataModule(RelationDataModule):
    """Few-shot relation classification with NOTA on real sentences, offline: FewRel 2.0's NYT (25 relations) and
    SemEval-2010 (17) validation files shipped with the package, in the fixed relation-disjoint splits of
    :data:`NYT_SEMEVAL_SPLITS` (22 train / 10 validation / 10 test relations).

    Entity types for GPAM's head/tail views: the files give no type - NYT's entities are Wikidata ids (their
    "instance of" types are not offline) and SemEval's "ids" are the entity words - so every entity's type string
    is ``generic_type`` (the debiased view then asks "what does the sentence say without this entity's name"),
    unless ``qid_types`` (a JSON ``{id: type}`` file of the user's) names one.

    Args:
        max_per_relation: instances kept per relation (None: all; NYT has 100, SemEval up to 1,135).
        qid_types: optional path of a ``{entity id: type string}`` JSON file.
        generic_type: the type string of entities without one.
        wordnet_root / synonym_rate: the context-debiased view (see :class:`FewRelNOTADataModule`).
        **kwargs: NOTA rates and the episode setting, see :class:`datamodules.relations.RelationDataModule`.
    """

    def __init__(self, max_per_relation: int | None = 100, qid_types: str | None = None,
                 generic_type: str = "entity", wordnet_root: str | None = None, synonym_rate: float = 0.15,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if max_per_relation is not None and max_per_relation < 1:
            raise ValueError(f"FewRelNYTSemEval max_per_relation must be positive or null, got {max_per_relation}")
        if not 0 <= synonym_rate <= 1:
            raise ValueError(f"FewRelNYTSemEval synonym_rate must be in [0, 1], got {synonym_rate}")
        self.max_per_relation, self.qid_types, self.generic_type = max_per_relation, qid_types, generic_type
        self.wordnet_root, self.synonym_rate = wordnet_root, synonym_rate

    @property
    def name(self) -> str:
        return "FewRel-NYT-SemEval"

    def build_sources(self) -> dict[str, Source]:
        sources = nyt_semeval_sources(self.max_per_relation)
        types = read_qid_types(self.qid_types) if self.qid_types else {}
        table = SynonymTable(read_wordnet(find_wordnet(self.wordnet_root))) if self.synonym_rate > 0 else None
        add_view_fields(sources, types, self.generic_type, table, self.synonym_rate)
        return sources
