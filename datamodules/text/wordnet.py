"""An offline few-shot text benchmark built from WordNet 3.0, and a leak-free passage corpus for retrieval.

**The task.** Each example is the definition (gloss) of a noun synset; its class is the *semantic category* the
synset falls under, a hypernym chosen by a size-bounded cut through the noun hierarchy:

1. Starting at ``entity.n.01``, a node whose hyponym closure (hyponyms and instance hyponyms, transitively)
   holds more than ``max_category_size`` synsets is split into its children; a node with at least
   ``min_examples`` descendants and at most ``max_category_size`` becomes a category; smaller nodes are dropped.
   Subtrees under ``exclude`` (by default taxonomic groups, whose glosses are templates such as "a genus of
   birds") are never categories.
2. WordNet is a DAG: a category that lies inside another (through a second hypernym) is dropped, and a synset
   under two categories is not used as an example (its class would be ambiguous).
3. An example whose text names its own category (e.g. "an intelligent **dog** with a thick curly coat" under
   ``dog.n.01``) is dropped when ``drop_self_naming`` is on, so the task cannot be solved by string matching;
   texts that occur in two classes are dropped, and so are duplicates within one.
4. Categories keeping at least ``min_examples`` examples are split train/val/test (class-disjoint) by a hash of
   ``split_seed`` and the category, in ``split_fractions``.

With the defaults and WordNet 3.0 this gives 325 classes (186 train / 70 val / 69 test) and 39,847 examples,
40 to 360 per class (median 94); for instance ``musical_composition.n.01`` ("a musical work that has been
created"), ``communicable_disease.n.01``, ``building.n.01``, ``gallinaceous_bird.n.01``.

**The passage corpus** (for retrieval-augmented methods) is every other WordNet synset of any part of speech,
as ``title = its lemmas``, ``text = its gloss``. It never contains (as a whole-word token sequence, ignoring case
and punctuation) any benchmark example's text or any category's label name (all lemmas of the category's root,
with simple plural forms); with the defaults 35,880 passages remain of 62,471 candidates. This is enforced at
build time by :func:`find_leaks`, checked again when a cached corpus is loaded with ``verify_leaks``, and tested.
Every synset under a category root, used as an example or not, is kept out of the corpus.

**The knowledge-gap variant** (``text="lemma"``, issue 21): the query is the synset's lemmas alone (``"trench
knife"``), which lack the knowledge that decides its category; the corpus (``wordnet-knowledge``) is every synset
except the category roots, *including* the examples' own synsets, whose glosses are that knowledge, and never
contains a category's label term. An example whose own passage names a category is dropped, so every example's
gold passage (``examples[i]["passage"]``, :meth:`WordNetDataModule.gold_passages`) is in the corpus. With the
defaults: 179 classes (103 / 40 / 36 train / val / test), 14,922 examples, 79,512 passages.

**Caching.** Parsing WordNet and cutting the hierarchy take seconds, so the result is written to
``<cache_dir>/<build key>/`` (benchmark JSON + passages JSON lines + a manifest recording the build parameters,
sha256 of the WordNet data files and of each output file) by :func:`safefiles.cached_build`: built under a
lock in a temporary directory renamed into place, the manifest last; a cache whose parameters, source files or
output checksums do not match is rebuilt.

**The files.** WordNet 3.0 database files, read by :mod:`datamodules.wordnet` (the reader every WordNet benchmark
shares).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from safefiles import atomic_write_text, cached_build, data_root, spec_key
from datamodules.episodes import SPLITS, Source
from datamodules.progress import Progress
from datamodules.text.base import TextEpisodicDataModule
from datamodules.text.passages import PassageCorpus
from datamodules.text.source import TextSource
from datamodules.wordnet import (PhraseMatcher, Synset, WordNet, WordNetFiles, find_leaks, find_wordnet,
                                 plural_forms, read_wordnet, words)

# The reader's other names, importable from here as before the reader became its own module (issue 22).
from datamodules.wordnet import (LEXNAMES, POS_FILES, WordNetNotFound, parse_data_file,  # noqa: F401,E402
                                 parse_index_names)

BUILD_VERSION = 2  # bump when the construction changes, so every cache is rebuilt (2: capped builds share the corpus)
#: What an example's text is: the definition (gloss), the lemmas and the definition, or the lemmas alone (the
#: knowledge-gap benchmark: the deciding knowledge is in the corpus, see the module docstring).
TEXTS = ("definition", "lemma_definition", "lemma")
ROOT_SYNSET = "entity.n.01"


# -- the benchmark ----------------------------------------------------------------------------------------------

def _label_terms(s: Synset) -> list[str]:
    return sorted({lemma.replace("_", " ").lower() for lemma in s.lemmas})


def _split_of(split_seed: int, name: str, fractions: Sequence[float]) -> str:
    # A hash per category, not a shuffle of the list: adding or removing a category moves no other one.
    u = int.from_bytes(hashlib.blake2b(f"{split_seed}/{name}".encode(), digest_size=8).digest(), "little") / 2**64
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def build_benchmark(wn: WordNet, min_examples: int = 40, max_category_size: int = 400,
                    exclude: Sequence[str] = ("taxonomic_group.n.01",),
                    split_fractions: Sequence[float] = (0.6, 0.2, 0.2), split_seed: int = 0,
                    drop_self_naming: bool = True, min_words: int = 3, max_per_class: int | None = None,
                    text: str = "definition") -> dict[str, Any]:
    """Cut the noun hierarchy into categories and label synset definitions with them (see the module docstring).

    Returns a JSON-ready dict: ``categories`` (name, key, label terms, split, size), ``examples`` (text, class
    index, synset key) and ``members`` (keys of every synset under a kept category root, and the roots: what
    the passage corpus must leave out).
    """
    if min_examples < 1 or max_category_size < min_examples:
        raise ValueError(f"need 1 <= min_examples <= max_category_size, got {min_examples}, {max_category_size}")
    if len(split_fractions) != 3 or abs(sum(split_fractions) - 1) > 1e-6 or min(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be three positive numbers summing to 1, got {split_fractions}")
    if text not in TEXTS:
        raise ValueError(f"text must be one of {TEXTS}, got {text!r}")
    syn = wn.synsets
    children: dict[str, list[str]] = {}
    for key, s in syn.items():
        if s.pos == "n":
            children[key] = [t for sym, t in s.pointers if sym in ("~", "~i") and t.endswith("-n")]

    closure: dict[str, frozenset[str]] = {}

    def descendants(root: str) -> frozenset[str]:
        # iterative post-order: the noun hierarchy is 20 levels deep but recursion limits are a poor contract
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if node in closure:
                continue
            if done:
                acc: set[str] = set()
                for c in children[node]:
                    acc.add(c)
                    acc |= closure[c]
                closure[node] = frozenset(acc)
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in children[node] if c not in closure)
        return closure[root]

    excluded: set[str] = set()
    for name in exclude:
        k = wn.key(name)
        excluded |= {k} | descendants(k)
    root = wn.key(ROOT_SYNSET)
    descendants(root)
    cats, seen, frontier = [], set(), [root]
    while frontier:  # breadth-first, children in file order: deterministic
        node = frontier.pop(0)
        if node in seen or node in excluded:
            continue
        seen.add(node)
        size = len(closure[node] - excluded)
        if size > max_category_size:
            frontier.extend(children[node])
        elif size >= min_examples:
            cats.append(node)
    cats = [c for c in cats if not any(c in closure[d] for d in cats if d != c)]  # nested via a second hypernym
    owners: dict[str, list[str]] = {}
    for c in cats:
        for m in closure[c] - excluded:
            owners.setdefault(m, []).append(c)

    def example_text(s: Synset) -> str:
        if text == "lemma_definition":
            return f"{_lemma_title(s)}: {s.definition}"
        if text == "lemma":
            return _lemma_title(s)
        return s.definition

    # text="lemma" (knowledge gap): an example's own passage (its lemmas and gloss) is the knowledge that decides
    # its class, so it must be in the corpus, hence must not name any category: examples whose passage does are
    # dropped. The terms of every candidate category are used (a superset of the kept ones): stricter, not looser.
    naming = PhraseMatcher(f for c in cats for term in _label_terms(syn[c]) for f in plural_forms(term))

    per_cat: dict[str, list[tuple[str, str]]] = {c: [] for c in cats}
    text_classes: dict[str, set[str]] = {}
    for m in sorted(owners):
        if len(owners[m]) != 1:
            continue
        c = owners[m][0]
        t = example_text(syn[m])
        w = words(syn[m].definition)
        if len(w) < min_words:
            continue
        if drop_self_naming and PhraseMatcher(
                f for term in _label_terms(syn[c]) for f in plural_forms(term)).find(t) is not None:
            continue
        if text == "lemma" and naming.find(_passage_text(syn[m])) is not None:
            continue
        per_cat[c].append((t, m))
        text_classes.setdefault(t, set()).add(c)
    categories, examples = [], []
    for c in sorted(cats, key=lambda k: wn.names[k]):
        kept, used = [], set()
        for t, m in per_cat[c]:
            if len(text_classes[t]) > 1 or t in used:
                continue  # a text in two classes has no single label; a repeat inside one adds nothing
            used.add(t)
            kept.append((t, m))
        if len(kept) < min_examples:
            continue
        if max_per_class is not None and len(kept) > max_per_class:
            # keep a hash-ordered subset: deterministic, and not biased to low offsets (which cluster by age)
            kept = sorted(kept, key=lambda tm: hashlib.blake2b(tm[1].encode(), digest_size=8).digest())
            kept = sorted(kept[:max_per_class], key=lambda tm: tm[1])
        idx = len(categories)
        categories.append({"name": wn.names[c], "key": c, "label_terms": _label_terms(syn[c]),
                           "split": _split_of(split_seed, wn.names[c], split_fractions), "size": len(kept),
                           "definition": syn[c].definition})
        # knowledge gap: the example's own synset is its gold passage (the corpus id), for the ceiling
        examples += [{"text": t, "label": idx, "synset": m, **({"passage": m} if text == "lemma" else {})}
                     for t, m in kept]
    counts = {s: sum(1 for c in categories if c["split"] == s) for s in SPLITS}
    if min(counts.values()) < 2:
        raise ValueError(f"WordNet benchmark: too few categories per split {counts}; lower min_examples or raise "
                         "max_category_size")
    members = sorted(set().union(*(closure[c["key"]] | {c["key"]} for c in categories)))
    return {"categories": categories, "examples": examples, "members": members}


def _lemma_title(s: Synset) -> str:
    return ", ".join(w.replace("_", " ") for w in s.lemmas)


def _passage_text(s: Synset) -> str:
    """A synset as the corpus holds it, ``"<lemmas>: <gloss>"`` (= ``PassageCorpus.passage``)."""
    return f"{_lemma_title(s)}: {s.gloss}"


def knowledge_gap(bench: dict[str, Any]) -> bool:
    """Whether ``bench`` is the knowledge-gap variant (queries are lemmas, the corpus holds their glosses)."""
    return bool(bench["examples"]) and "passage" in bench["examples"][0]


def build_passages(wn: WordNet, bench: dict[str, Any], knowledge: bool = False
                   ) -> tuple[PassageCorpus, dict[str, int]]:
    """The retrieval corpus, minus any leaking passage; returns it and counts of what was left out (for the manifest).

    ``knowledge=False`` (queries are definitions): every synset *outside* the benchmark's category subtrees; a
    passage leaks if it contains an example's text or a category's label term.

    ``knowledge=True`` (queries are lemmas, ``text="lemma"``): every synset except the category roots, the
    examples' own synsets included, since their glosses are the knowledge a lemma lacks. A passage leaks if it
    contains a category's label term; it may contain an example's text (a lemma), since a passage *about* the
    query is the point. Every example's own passage (its gold passage) is in the corpus: the benchmark dropped the
    examples whose passage names a category.
    """
    members = set(bench["members"])
    excluded = {c["key"] for c in bench["categories"]} if knowledge else members
    ids, titles, texts = [], [], []
    for key in sorted(wn.synsets):
        if key in excluded:
            continue
        s = wn.synsets[key]
        ids.append(key)
        titles.append(_lemma_title(s))
        texts.append(s.gloss)
    corpus = PassageCorpus(ids, titles, texts, name="wordnet-knowledge" if knowledge else "wordnet-passages")
    leaks = find_leaks([corpus.passage(i) for i in range(len(corpus))],
                       [] if knowledge else [e["text"] for e in bench["examples"]],
                       [t for c in bench["categories"] for t in c["label_terms"]])
    bad = {i for i, _ in leaks}
    keep = [i for i in range(len(corpus)) if i not in bad]
    clean = PassageCorpus([ids[i] for i in keep], [titles[i] for i in keep], [texts[i] for i in keep],
                          name=corpus.name)
    if knowledge:
        kept = set(clean.ids)
        missing = [e["passage"] for e in bench["examples"] if e["passage"] not in kept]
        if missing:  # build_benchmark's filter and this one disagree: a bug, never a silent ceiling gap
            raise AssertionError(f"{len(missing)} examples lost their gold passage (first: {missing[0]})")
    return clean, {"candidates": len(ids), "leaking_removed": len(bad), "kept": len(keep),
                   "benchmark_subtree_synsets": len(members)}


# -- cache ------------------------------------------------------------------------------------------------------



def load_or_build(files: WordNetFiles, cache_dir: str | os.PathLike, params: dict[str, Any],
                  verify_leaks: bool = False) -> tuple[dict[str, Any], PassageCorpus, Path]:
    """The benchmark and corpus for ``params`` (arguments of :func:`build_benchmark`), from cache or built.

    The cache directory is named by a hash of the parameters; it is reused only if its manifest records the same
    build version, parameters and WordNet file checksums, and every output file matches its recorded sha256
    (:func:`safefiles.cached_build`). Returns (benchmark, corpus, cache directory).
    """
    spec = {"version": BUILD_VERSION, "params": params, "wordnet": files.fingerprint()}

    def build(out: Path) -> dict[str, Any]:
        # three steps of similar length (parse, cut, corpus + leak check): ~15 s on one core, worth a line
        with Progress(f"building the WordNet benchmark into {out.parent}", 3, "steps") as bar:
            wn = read_wordnet(files)
            bar.update()
            bench = build_benchmark(wn, **params)
            # A capped build (max_per_class) gets the uncapped build's corpus: leak-free for every example, so for
            # its subset too, and the same passages, hence one shared retrieval index instead of two ~36k-passage
            # embeddings (the cap only removes examples; categories and subtrees are the same).
            full = bench if params.get("max_per_class") is None else build_benchmark(
                wn, **{**params, "max_per_class": None})
            bar.update()
            corpus, stats = build_passages(wn, full, knowledge=params.get("text") == "lemma")
            bar.update()
        atomic_write_text(out / "benchmark.json", json.dumps(bench, ensure_ascii=False))
        corpus.write_jsonl(out / "passages.jsonl")
        return {"source": str(files.path), "corpus": stats, "corpus_checksum": corpus.checksum,
                "classes": {s: sum(1 for c in bench["categories"] if c["split"] == s) for s in SPLITS},
                "examples": len(bench["examples"])}

    # The spec sits under one "spec" field of the manifest, as caches written before cached_build have it.
    out = cached_build(Path(cache_dir).expanduser() / f"wordnet-{spec_key(spec)}", {"spec": spec}, build)
    bench = json.loads((out / "benchmark.json").read_text())
    corpus = _read_corpus(out / "passages.jsonl", "wordnet-knowledge" if knowledge_gap(bench) else "wordnet-passages")
    if verify_leaks:
        _assert_leak_free(bench, corpus)
    return bench, corpus, out


def _read_corpus(path: Path, name: str) -> PassageCorpus:
    ids, titles, texts = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            titles.append(row["title"])
            texts.append(row["text"])
    return PassageCorpus(ids, titles, texts, name=name)


def _assert_leak_free(bench: dict[str, Any], corpus: PassageCorpus) -> None:
    knowledge = knowledge_gap(bench)  # there a passage may hold an example's text (a lemma): see build_passages
    leaks = find_leaks([corpus.passage(i) for i in range(len(corpus))],
                       [] if knowledge else [e["text"] for e in bench["examples"]],
                       [t for c in bench["categories"] for t in c["label_terms"]])
    if knowledge and not {e["passage"] for e in bench["examples"]} <= set(corpus.ids):
        raise ValueError("WordNet knowledge-gap corpus lacks some examples' gold passages; delete the cache to rebuild")
    if leaks:
        i, hit = leaks[0]
        raise ValueError(f"WordNet passage corpus leaks: passage {corpus.ids[i]!r} contains {hit!r} "
                         f"({len(leaks)} leaking passages); delete the cache to rebuild")


# -- the data module --------------------------------------------------------------------------------------------

class WordNetDataModule(TextEpisodicDataModule):
    """Few-shot classification of WordNet definitions into semantic categories, fully offline.

    Args:
        root: WordNet 3.0 database directory (or NLTK ``wordnet.zip``); found automatically if None.
        cache_dir: where the built benchmark and corpus are cached (default ``<data root>/wordnet``, the data root
            being ``$METAZOO_DATA`` or ``~/.cache/metazoo``).
        min_examples: fewest examples a category keeps (and the smallest subtree that can be one).
        max_category_size: a hypernym whose subtree is larger is split into its hyponyms.
        exclude: synset names whose subtrees never become categories.
        split_fractions: train/val/test share of the categories.
        split_seed: seeds the category split (not the episodes: that is ``seed``).
        drop_self_naming: drop examples whose text names their category.
        min_words: drop definitions shorter than this many words.
        max_per_class: cap on examples per class (None: all). The passage corpus stays the uncapped build's
            (leak-free for every example), so capped and full settings share one retrieval index.
        text: ``"definition"`` (the gloss only) or ``"lemma_definition"`` (``"beagle: a small ..."``): with the
            lemma the task also tests what the encoder knows about the word, without it only the description.
            ``"lemma"``: the **knowledge-gap** benchmark (issue 21): the query is the synset's lemmas alone
            (``"beagle"``), which lack the knowledge that decides the class; the corpus
            (``wordnet-knowledge``) holds every synset's ``"<lemmas>: <gloss>"`` except the category roots,
            the examples' own included, and never a category's label term; an example whose own passage names a
            category is dropped, so each example's gold passage is in the corpus (:meth:`gold_passages`).
        verify_leaks: re-run the leak check when loading a cached corpus (it always runs when building).
        **kwargs: see :class:`datamodules.text.TextEpisodicDataModule`; a ``corpus_path`` replaces the WordNet
            corpus with another one.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, min_examples: int = 40,
                 max_category_size: int = 400, exclude: list[str] | None = None,
                 split_fractions: list[float] | None = None, split_seed: int = 0, drop_self_naming: bool = True,
                 min_words: int = 3, max_per_class: int | None = None, text: str = "definition",
                 verify_leaks: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.root, self.cache_dir = root, cache_dir
        self.params = {"min_examples": min_examples, "max_category_size": max_category_size,
                       "exclude": list(exclude) if exclude is not None else ["taxonomic_group.n.01"],
                       "split_fractions": list(split_fractions) if split_fractions is not None else [0.6, 0.2, 0.2],
                       "split_seed": split_seed, "drop_self_naming": drop_self_naming, "min_words": min_words,
                       "max_per_class": max_per_class, "text": text}
        self.verify_leaks = verify_leaks
        self.benchmark: dict[str, Any] | None = None
        self.cache_path: Path | None = None

    @property
    def name(self) -> str:
        return "WordNet"

    def prepare(self) -> None:
        """Load (or build and cache) the benchmark and corpus; idempotent."""
        if self.benchmark is None:
            files = find_wordnet(self.root)
            self.benchmark, corpus, self.cache_path = load_or_build(
                files, self.cache_dir or data_root() / "wordnet", self.params, self.verify_leaks)
            if self.corpus_path is None:
                self._corpus = corpus if self.max_passages is None else corpus.head(self.max_passages)

    def prepare_data(self) -> None:
        self.prepare()

    def build_sources(self) -> dict[str, Source]:
        self.prepare()
        cats, examples = self.benchmark["categories"], self.benchmark["examples"]
        names = {i: c["name"] for i, c in enumerate(cats)}
        out: dict[str, Source] = {}
        for split in SPLITS:
            rows = [e for e in examples if cats[e["label"]]["split"] == split]
            labels = torch.tensor([e["label"] for e in rows], dtype=torch.long)
            out[split] = TextSource([e["text"] for e in rows], labels,
                                    {i: n for i, n in names.items() if cats[i]["split"] == split})
        return out

    def passage_corpus(self) -> PassageCorpus | None:
        self.prepare()
        return super().passage_corpus()

    def gold_passages(self) -> dict[str, int]:
        """Knowledge-gap benchmark (``text="lemma"``): example text -> corpus index of its own synset's passage,
        the passage that holds the knowledge deciding its class (for the ceiling: the gold passage given directly).
        """
        self.prepare()
        if not knowledge_gap(self.benchmark):
            raise ValueError("WordNetDataModule.gold_passages: only the knowledge-gap benchmark (text='lemma') has "
                             f"gold passages; this one has text={self.params['text']!r}")
        corpus = self.passage_corpus()
        where = {pid: i for i, pid in enumerate(corpus.ids)}
        missing = [e["passage"] for e in self.benchmark["examples"] if e["passage"] not in where]
        if missing:
            raise ValueError(f"WordNetDataModule.gold_passages: {len(missing)} gold passages are not in the corpus "
                             f"in use (first: {missing[0]}); a corpus_path or max_passages replaced or cut it")
        return {e["text"]: where[e["passage"]] for e in self.benchmark["examples"]}

    def label_terms(self) -> dict[int, list[str]]:
        """Class id -> the words that name it (what the corpus never contains)."""
        self.prepare()
        return {i: c["label_terms"] for i, c in enumerate(self.benchmark["categories"])}
