"""WordNet-Rel: an offline few-shot relation classification benchmark built from the WordNet 3.0 database files.

**Relations** are WordNet pointer types between synsets, split by part of speech where the pointer joins different
kinds of words (:data:`RELATIONS`, 44 of them: hypernym and hyponym of nouns and verbs, instance hypernym and
hyponym, member / part / substance holonym and meronym, derivation between each pair of parts of speech, antonym
per part of speech, similar-to, pertainym, also-see, verb group, entailment, cause, attribute, participle, and the
topic / region / usage domains with their members). Relations with fewer than ``min_per_relation`` instances after
clean-up are dropped.

**An instance** is one (head synset, tail synset) pair joined by that pointer, written as the two synsets named by
their first lemma and defined by their gloss: ``"<head lemma> : <head definition> ; <tail lemma> : <tail
definition>"``, head first or tail first by a hash of the pair, with inclusive token spans on the two lemmas. The
template (``:`` and ``;``) is the same for every relation, so no template word gives the relation away; what
identifies it is what the two definitions say. A synset pair joined by two relation types is dropped (its label
would be ambiguous), symmetric relations keep one orientation of each pair, and at most ``max_per_relation``
pairs are kept per relation, chosen by a hash (deterministic, not biased to low file offsets).

**Views.** Each instance also carries ``head_type`` / ``tail_type`` (the first lemma of the entity's hypernym, skipping the
other entity so that the type never names it; the lexicographer category for synsets without hypernyms, e.g.
adjectives) and ``context_tokens`` (about ``synonym_rate`` of the definition words replaced by a WordNet synonym)
for GPAM's semi-factual views.

**Splits** are relation-disjoint: relations are grouped into families (a pointer and its inverse, e.g. hypernym and
hyponym, always share a split, so a test relation is never the mirror image of a training one) and families are
dealt to train/val/test in ``split_fractions`` by a hash of ``split_seed``, largest deficit first.

**Caching**: the build (a few seconds once WordNet is parsed) is written with a manifest by
:func:`safefiles.cached_build` under ``<cache_dir>/wordnet-rel-<key>``; the key covers the parameters, the
build version and the WordNet files' sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from safefiles import atomic_write_text, cached_build, data_root, spec_key
from datamodules.episodes import SPLITS, Source
from datamodules.relations.base import RelationDataModule
from datamodules.relations.views import SynonymTable, context_debiased
from datamodules.text.source import TextSource
from datamodules.wordnet import WordNet, find_wordnet, read_wordnet

BUILD_VERSION = 3  # bump when the construction changes, so every cache is rebuilt

# name, pointer symbol, head part of speech, tail part of speech, family (shares a split)
RELATIONS: list[tuple[str, str, str, str, str]] = [
    ("hypernym.n", "@", "n", "n", "hyper.n"), ("hyponym.n", "~", "n", "n", "hyper.n"),
    ("hypernym.v", "@", "v", "v", "hyper.v"), ("troponym.v", "~", "v", "v", "hyper.v"),
    ("instance_hypernym", "@i", "n", "n", "instance"), ("instance_hyponym", "~i", "n", "n", "instance"),
    ("member_holonym", "#m", "n", "n", "member"), ("member_meronym", "%m", "n", "n", "member"),
    ("part_holonym", "#p", "n", "n", "part"), ("part_meronym", "%p", "n", "n", "part"),
    ("substance_holonym", "#s", "n", "n", "substance"), ("substance_meronym", "%s", "n", "n", "substance"),
    ("derivation.v-n", "+", "v", "n", "derivation.vn"), ("derivation.n-v", "+", "n", "v", "derivation.vn"),
    ("derivation.n-a", "+", "n", "a", "derivation.na"), ("derivation.a-n", "+", "a", "n", "derivation.na"),
    ("derivation.v-a", "+", "v", "a", "derivation.va"), ("derivation.a-v", "+", "a", "v", "derivation.va"),
    ("derivation.n-n", "+", "n", "n", "derivation.nn"),
    ("similar_to", "&", "a", "a", "similar"),
    ("antonym.a", "!", "a", "a", "antonym.a"), ("antonym.n", "!", "n", "n", "antonym.n"),
    ("antonym.v", "!", "v", "v", "antonym.v"), ("antonym.r", "!", "r", "r", "antonym.r"),
    ("pertainym.a-n", "\\", "a", "n", "pertainym.an"), ("pertainym.r-a", "\\", "r", "a", "pertainym.ra"),
    ("also_see.a", "^", "a", "a", "also_see.a"), ("also_see.v", "^", "v", "v", "also_see.v"),
    ("verb_group", "$", "v", "v", "verb_group"), ("entailment", "*", "v", "v", "entailment"),
    ("cause", ">", "v", "v", "cause"),
    ("attribute.n-a", "=", "n", "a", "attribute"), ("attribute.a-n", "=", "a", "n", "attribute"),
    ("topic_domain.n", ";c", "n", "n", "topic.n"), ("topic_member.n", "-c", "n", "n", "topic.n"),
    ("topic_domain.v", ";c", "v", "n", "topic.v"), ("topic_member.v", "-c", "n", "v", "topic.v"),
    ("topic_domain.a", ";c", "a", "n", "topic.a"), ("topic_member.a", "-c", "n", "a", "topic.a"),
    ("region_domain.n", ";r", "n", "n", "region"), ("region_member.n", "-r", "n", "n", "region"),
    ("usage_domain.n", ";u", "n", "n", "usage"), ("usage_member.n", "-u", "n", "n", "usage"),
    ("participle", "<", "a", "v", "participle"),
]
SYMMETRIC = {"similar_to", "antonym.a", "antonym.n", "antonym.v", "antonym.r", "also_see.a", "also_see.v",
             "verb_group", "derivation.n-n"}
POS_WORD = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}
_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def _hash(*key: object) -> bytes:
    return hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()


def tokenize(text: str) -> list[str]:
    """Words (with inner hyphens and apostrophes) and punctuation marks, as separate tokens."""
    return _TOKEN.findall(text)


def entity_type(wn: WordNet, key: str, avoid: str) -> str:
    """The string that replaces an entity in a debiased view: the first lemma of its first hypernym, of the
    hypernym's hypernym when the hypernym is ``avoid`` (the other entity), else its lexicographer category, else its
    part of speech; never the other entity's name, which would leak into the view."""
    s = wn.synsets[key]
    other = wn.synsets[avoid].lemmas[0].replace("_", " ").lower()
    candidates = []
    for sym, target in s.pointers:
        if sym in ("@", "@i"):
            up = [target] if target != avoid else [t for y, t in wn.synsets[target].pointers if y in ("@", "@i")]
            candidates += [wn.synsets[t].lemmas[0].replace("_", " ").lower() for t in up]
    category = s.lexname.split(".", 1)[1]
    if category not in ("all", "pert", "ppl", "Tops"):
        candidates.append(category)
    candidates.append(POS_WORD[s.pos])
    return next(c for c in candidates if c != other)


def deal_splits(families: list[str], sizes: dict[str, int], fractions: list[float], seed: int) -> dict[str, str]:
    """Family -> split: families in hash order, each to the split furthest below its share of relations."""
    total = sum(sizes.values())
    have = {s: 0 for s in SPLITS}
    out = {}
    for fam in sorted(families, key=lambda f: _hash(seed, f)):
        split = max(SPLITS, key=lambda s: (fractions[SPLITS.index(s)] * total - have[s], -SPLITS.index(s)))
        out[fam] = split
        have[split] += sizes[fam]
    return out


def build_relations(wn: WordNet, min_per_relation: int = 40, max_per_relation: int = 40,
                    split_fractions: list[float] | None = None, split_seed: int = 0,
                    synonym_rate: float = 0.15) -> dict[str, Any]:
    """Build the benchmark (see the module docstring) as a JSON-ready dict: ``relations`` (name, pointer, split,
    size) and ``instances`` (tokens, head/tail spans, types, context tokens, label, head/tail synset keys)."""
    fractions = list(split_fractions or [0.5, 0.25, 0.25])
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"split_fractions must be three positive numbers summing to 1, got {fractions}")
    if not 1 <= min_per_relation <= max_per_relation:
        raise ValueError(f"need 1 <= min_per_relation <= max_per_relation, got {min_per_relation}, {max_per_relation}")
    pairs: dict[str, set[tuple[str, str]]] = {name: set() for name, *_ in RELATIONS}
    by_pointer = {(sym, hp, tp): name for name, sym, hp, tp, _ in RELATIONS}
    for key, s in wn.synsets.items():
        for sym, target in s.pointers:
            name = by_pointer.get((sym, s.pos, wn.synsets[target].pos))
            if name is None or target == key:
                continue
            if name in SYMMETRIC and target < key:
                key_pair = (target, key)
            else:
                key_pair = (key, target)
            pairs[name].add(key_pair)
    # an ordered pair under two relation types has no single label (a pointer and its inverse, e.g. hypernym and
    # hyponym, give the pair in opposite orders, which is no ambiguity: the head decides)
    owners: dict[tuple[str, str], set[str]] = {}
    for name, ps in pairs.items():
        for h, t in ps:
            owners.setdefault((h, t), set()).add(name)
            if name in SYMMETRIC:
                owners.setdefault((t, h), set()).add(name)
    table = SynonymTable(wn)
    kept: dict[str, list[tuple[str, str]]] = {}
    for name, *_ in RELATIONS:
        clean = [p for p in pairs[name] if len(owners[p]) == 1 and wn.synsets[p[0]].definition
                 and wn.synsets[p[1]].definition]
        clean.sort(key=lambda p: _hash(name, *p))
        if len(clean) >= min_per_relation:
            kept[name] = sorted(clean[:max_per_relation])
    family = {name: fam for name, _, _, _, fam in RELATIONS if name in kept}
    sizes: dict[str, int] = {}
    for fam in family.values():
        sizes[fam] = sizes.get(fam, 0) + 1
    split_of = deal_splits(sorted(sizes), sizes, fractions, split_seed)
    relations, instances = [], []
    for name, sym, hp, tp, fam in RELATIONS:
        if name not in kept:
            continue
        label = len(relations)
        relations.append({"name": name, "pointer": sym, "head_pos": hp, "tail_pos": tp, "family": fam,
                          "split": split_of[fam], "size": len(kept[name])})
        for h, t in kept[name]:
            instances.append(_instance(wn, table, h, t, label, synonym_rate))
    return {"relations": relations, "instances": instances}


def _instance(wn: WordNet, table: SynonymTable, h: str, t: str, label: int, synonym_rate: float) -> dict[str, Any]:
    parts = []
    for key in (h, t):
        s = wn.synsets[key]
        parts.append((s.lemmas[0].replace("_", " ").split(), tokenize(s.definition)))
    head_first = _hash("order", h, t)[0] % 2 == 0
    order = [0, 1] if head_first else [1, 0]
    tokens: list[str] = []
    spans: dict[int, list[int]] = {}
    for j, which in enumerate(order):
        if j:
            tokens.append(";")
        lemma, definition = parts[which]
        spans[which] = [len(tokens), len(tokens) + len(lemma) - 1]
        tokens += lemma + [":"] + definition
    head, tail = spans[0], spans[1]
    return {"tokens": tokens, "head": head, "tail": tail, "label": label, "head_key": h, "tail_key": t,
            "head_type": entity_type(wn, h, t), "tail_type": entity_type(wn, t, h),
            "context_tokens": context_debiased(tokens, head, tail, synonym_rate, f"{h}/{t}", table)}


def load_or_build(root: str | None, cache_dir: str | Path, params: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The benchmark for ``params`` (arguments of :func:`build_relations`), from the cache or built into it."""
    files = find_wordnet(root)
    spec = {"version": BUILD_VERSION, "params": params, "wordnet": files.fingerprint()}

    def build(out: Path) -> dict[str, Any]:
        bench = build_relations(read_wordnet(files), **params)
        atomic_write_text(out / "relations.json", json.dumps(bench, ensure_ascii=False))
        return {"source": str(files.path), "instances": len(bench["instances"]),
                "relations": {s: [r["name"] for r in bench["relations"] if r["split"] == s] for s in SPLITS}}

    out = cached_build(Path(cache_dir).expanduser() / f"wordnet-rel-{spec_key(spec)}", {"spec": spec}, build)
    return json.loads((out / "relations.json").read_text()), out


def relation_sources(bench: dict[str, Any]) -> dict[str, Source]:
    """One :class:`TextSource` per split with the relation fields (:data:`datamodules.relations.RELATION_FIELDS`)."""
    rels = bench["relations"]
    out: dict[str, Source] = {}
    for split in SPLITS:
        rows = [r for r in bench["instances"] if rels[r["label"]]["split"] == split]
        fields = {"tokens": [r["tokens"] for r in rows],
                  "head": torch.tensor([r["head"] for r in rows], dtype=torch.long).reshape(-1, 2),
                  "tail": torch.tensor([r["tail"] for r in rows], dtype=torch.long).reshape(-1, 2),
                  "head_type": [r["head_type"] for r in rows], "tail_type": [r["tail_type"] for r in rows],
                  "context_tokens": [r["context_tokens"] for r in rows]}
        names = {i: r["name"] for i, r in enumerate(rels) if r["split"] == split}
        out[split] = TextSource([" ".join(r["tokens"]) for r in rows], [r["label"] for r in rows], names, fields)
    return out


class WordNetRelDataModule(RelationDataModule):
    """Few-shot relation classification with NOTA on WordNet-Rel (see the module docstring), fully offline.

    Args:
        root: WordNet 3.0 database directory (or NLTK ``wordnet.zip``); found automatically if None.
        cache_dir: where the build is cached (default ``<data root>/wordnet-rel``).
        min_per_relation / max_per_relation: a relation with fewer instances is dropped; more are subsampled.
        split_fractions: train/val/test share of the relations (by family).
        split_seed: seeds the relation split (not the episodes: that is ``seed``).
        synonym_rate: share of context words replaced in the context-debiased view.
        **kwargs: NOTA rates and the episode setting, see :class:`datamodules.relations.RelationDataModule`.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, min_per_relation: int = 40,
                 max_per_relation: int = 40, split_fractions: list[float] | None = None, split_seed: int = 0,
                 synonym_rate: float = 0.15, **kwargs: Any):
        super().__init__(**kwargs)
        self.root, self.cache_dir = root, cache_dir
        self.params = {"min_per_relation": min_per_relation, "max_per_relation": max_per_relation,
                       "split_fractions": list(split_fractions or [0.5, 0.25, 0.25]), "split_seed": split_seed,
                       "synonym_rate": synonym_rate}
        self.benchmark: dict[str, Any] | None = None
        self.cache_path: Path | None = None

    @property
    def name(self) -> str:
        return "WordNet-Rel"

    def prepare(self) -> None:
        if self.benchmark is None:
            self.benchmark, self.cache_path = load_or_build(self.root, self.cache_dir or data_root() / "wordnet-rel",
                                                            self.params)

    def prepare_data(self) -> None:
        self.prepare()

    def build_sources(self) -> dict[str, Source]:
        self.prepare()
        return relation_sources(self.benchmark)
