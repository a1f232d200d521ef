"""WordNet-QA: an offline multi-task multiple-choice benchmark built from the WordNet 3.0 database files.

Seven tasks of different kinds, each 4-way multiple choice (:data:`TASKS`):

* ``definition``: a gloss -> the word it defines;
* ``hypernym``: "X is a kind of what?" (noun hypernym);
* ``meronym``: "X is a part of what?" (part holonym);
* ``antonym``: "What is the opposite of X?" (antonym pointers, any part of speech);
* ``cloze``: a WordNet example sentence with its word blanked -> the word;
* ``synonym``: "Which word means the same as X?" (another lemma of X's synset);
* ``verb_relation``: "What does doing X entail / cause?" (verb entailment and cause pointers).

**Distractors.** For each item three wrong choices are drawn from the *answers of the other items of the same
task* that share the item's group (lexicographer file of the answer, e.g. ``noun.body``, or its part of speech):
so distractors have the answer's part of speech and semantic field (plausible), and every string appears as a
distractor about three times as often as it is correct, so the answer cannot be picked by a prior over choice
strings alone (``benchmarks/meta_rtl_wordnet_qa.py`` trains a choice-only scorer as a check and records it).
Any string that is also a right answer (another lemma of the answer's synset, another hypernym of X) and any
word of the question is excluded. An item whose answer appears as a word in its own prompt is dropped (a surface
cue). [INTERP] WordNet's antonym pointers are lexical (word to word) but are read at the synset level here: the
first lemma of each synset stands for the pair.

**Splits.** Items are shuffled with ``split_seed`` and cut into test (``test_size``), dev (``dev_size``) and
train (the rest, at most ``max_train``); a task with fewer items (``verb_relation``, about 460) keeps at most a
third for test and a sixth for dev. Leave-one-task-out targets take a low-resource subset of a task's train
list (:func:`datamodules.qa.items.low_resource`); sources use their full train lists.

**Caching.** Parsing WordNet takes seconds, so the tasks are written once to
``<cache_dir>/wordnet-qa-<key>/tasks.json`` by :func:`safefiles.cached_build` (manifest with the build
parameters and the sha256 of the WordNet files).
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safefiles import atomic_write_text, cached_build, data_root, spec_key
from datamodules.qa.base import MultipleChoiceDataModule
from datamodules.qa.items import MCItem, MCTask, make_item
from datamodules.wordnet import Synset, WordNet, WordNetFiles, find_wordnet, read_wordnet

BUILD_VERSION = 2  # 2: small tasks keep half their items for training
TASKS = ("definition", "hypernym", "meronym", "antonym", "cloze", "synonym", "verb_relation")
N_CHOICES = 4
_WORD = re.compile(r"[a-z0-9]+")


def _text(lemma: str) -> str:
    return lemma.replace("_", " ")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


# Each builder yields raw items: (prompt context, question, answer, also-correct strings, distractor group)
Raw = tuple[str, str, str, set[str], str]


def _lemmas(s: Synset) -> set[str]:
    return {_text(x) for x in s.lemmas}


def _targets(wn: WordNet, s: Synset, symbols: tuple[str, ...]) -> list[Synset]:
    return [wn.synsets[t] for sym, t in s.pointers if sym in symbols]


def _definition(wn: WordNet) -> list[Raw]:
    return [(s.definition, "Which word has this meaning?", _text(s.lemmas[0]), _lemmas(s), s.lexname)
            for s in wn.synsets.values() if s.pos in "nva" and s.definition]


def _hypernym(wn: WordNet) -> list[Raw]:
    out = []
    for s in wn.synsets.values():
        if s.pos != "n":
            continue
        hypers = _targets(wn, s, ("@", "@i"))
        if hypers:
            also = set().union(*(_lemmas(h) for h in hypers))
            out.append(("", f"{_text(s.lemmas[0])} is a kind of what?", _text(hypers[0].lemmas[0]), also,
                        hypers[0].lexname))
    return out


def _meronym(wn: WordNet) -> list[Raw]:
    out = []
    for s in wn.synsets.values():
        wholes = _targets(wn, s, ("#p",))
        if wholes:
            also = set().union(*(_lemmas(h) for h in wholes))
            out.append(("", f"{_text(s.lemmas[0])} is a part of what?", _text(wholes[0].lemmas[0]), also,
                        wholes[0].lexname))
    return out


def _antonym(wn: WordNet) -> list[Raw]:
    out = []
    for s in wn.synsets.values():
        opposite = _targets(wn, s, ("!",))
        if opposite:
            also = set().union(*(_lemmas(h) for h in opposite))
            out.append(("", f"What is the opposite of {_text(s.lemmas[0])}?", _text(opposite[0].lemmas[0]), also,
                        s.pos))
    return out


def _cloze(wn: WordNet) -> list[Raw]:
    out = []
    for s in wn.synsets.values():
        for lemma in s.lemmas:
            if "_" in lemma:
                continue
            pattern = re.compile(rf"\b{re.escape(lemma)}\b", re.IGNORECASE)
            example = next((e for e in s.examples if len(pattern.findall(e)) == 1), None)
            if example is not None:
                out.append((pattern.sub("___", example), "Which word fills the blank?", lemma, _lemmas(s),
                            f"{s.pos}:{s.lexname}"))
                break
    return out


def _synonym(wn: WordNet) -> list[Raw]:
    return [("", f"Which word means the same as {_text(s.lemmas[0])}?", _text(s.lemmas[1]), _lemmas(s), s.lexname)
            for s in wn.synsets.values() if len(s.lemmas) >= 2 and s.lemmas[0].lower() != s.lemmas[1].lower()]


def _verb_relation(wn: WordNet) -> list[Raw]:
    out = []
    for s in wn.synsets.values():
        for sym, question in (("*", "What does {} entail?"), (">", "What does {} cause?")):
            targets = _targets(wn, s, (sym,))
            if targets:
                also = set().union(*(_lemmas(h) for h in targets))
                out.append(("", question.format(_text(s.lemmas[0])), _text(targets[0].lemmas[0]), also, sym))
    return out


BUILDERS: dict[str, Callable[[WordNet], list[Raw]]] = {
    "definition": _definition, "hypernym": _hypernym, "meronym": _meronym, "antonym": _antonym, "cloze": _cloze,
    "synonym": _synonym, "verb_relation": _verb_relation,
}


def build_task(name: str, raw: list[Raw], rng: random.Random, n_choices: int = N_CHOICES) -> list[MCItem]:
    """Multiple-choice items from raw (context, question, answer, also-correct, group) tuples; see the module
    docstring for how distractors are drawn. Items without ``n_choices - 1`` admissible distractors are dropped."""
    kept = [r for r in raw if r[2].lower() not in _words(f"{r[0]} {r[1]}") and not (_words(r[2]) & _words(r[1]))]
    pools: dict[str, list[str]] = defaultdict(list)
    for r in kept:
        pools[r[4]].append(r[2])
    everything = [r[2] for r in kept]
    items = []
    for i, (context, question, answer, also, group) in enumerate(kept):
        banned = {a.lower() for a in also | {answer}} | _words(f"{context} {question}")
        chosen: list[str] = []
        for pool in (pools[group], everything):  # the group first; the whole task if the group is too small
            candidates = [c for c in pool if c.lower() not in banned]
            for _ in range(20 * n_choices):
                if len(chosen) == n_choices - 1 or not candidates:
                    break
                c = rng.choice(candidates)  # frequency-weighted: matches how often each string is an answer
                if c.lower() not in {x.lower() for x in chosen}:
                    chosen.append(c)
            if len(chosen) == n_choices - 1:
                break
        if len(chosen) < n_choices - 1:
            continue
        position = rng.randrange(n_choices)
        choices = chosen[:position] + [answer] + chosen[position:]
        items.append(make_item(context, question, choices, position, f"wordnet-qa {name} item {i}", f"{name}-{i}"))
    return items


def build_tasks(wn: WordNet, tasks: tuple[str, ...] | list[str] = TASKS, test_size: int = 300, dev_size: int = 100,
                max_train: int = 1200, split_seed: int = 0) -> dict[str, MCTask]:
    """Every task in ``tasks`` as an :class:`MCTask`; deterministic for ``split_seed``."""
    unknown = [t for t in tasks if t not in BUILDERS]
    if unknown:
        raise ValueError(f"WordNet-QA: unknown task(s) {unknown}; expected some of {list(BUILDERS)}")
    out = {}
    for name in tasks:
        rng = random.Random(f"{split_seed}:{name}")
        raw = sorted(BUILDERS[name](wn), key=lambda r: (r[1], r[0], r[2]))  # independent of dict order
        rng.shuffle(raw)
        raw = raw[: (test_size + dev_size + max_train) * 2]  # drafts: filtering and distractors drop some
        items = build_task(name, raw, rng)
        # a small task (verb_relation: ~460 items) keeps half of them for training: test and dev shrink to fit
        n_test, n_dev = min(test_size, len(items) // 3), min(dev_size, len(items) // 6)
        if len(items) - n_test - n_dev < 2 or n_dev < 1 or n_test < 1:
            raise ValueError(f"WordNet-QA task {name}: only {len(items)} items, too few for test, dev and train")
        test, dev = items[:n_test], items[n_test:n_test + n_dev]
        out[name] = MCTask(name, train=items[n_test + n_dev:][:max_train], dev=dev, test=test)
    return out


def tasks_to_json(tasks: dict[str, MCTask]) -> dict[str, Any]:
    def items(xs: list[MCItem]) -> list[dict[str, Any]]:
        return [{"id": x.id, "context": x.context, "question": x.question, "choices": list(x.choices),
                 "answer": x.answer} for x in xs]

    return {name: {s: items(t.split(s)) for s in ("train", "dev", "test")} for name, t in tasks.items()}


def tasks_from_json(data: dict[str, Any], where: str) -> dict[str, MCTask]:
    out = {}
    for name, splits in data.items():
        parts = {s: [make_item(r["context"], r["question"], r["choices"], r["answer"], f"{where} {name} {r['id']}",
                               r["id"]) for r in splits[s]] for s in ("train", "dev", "test")}
        out[name] = MCTask(name, **parts)
    return out


def load_or_build(files: WordNetFiles | None = None, cache_dir: str | Path | None = None,
                  **params: Any) -> tuple[dict[str, MCTask], Path]:
    """The WordNet-QA tasks for ``params`` (arguments of :func:`build_tasks`), from the cache or built once."""
    files = files or find_wordnet()
    params = {"tasks": list(params.pop("tasks", TASKS)), **params}
    spec = {"version": BUILD_VERSION, "params": params, "wordnet": files.fingerprint()}

    def build(out: Path) -> dict[str, Any]:
        tasks = build_tasks(read_wordnet(files), **params)
        atomic_write_text(out / "tasks.json", json.dumps(tasks_to_json(tasks), ensure_ascii=False))
        return {"sizes": {n: t.sizes() for n, t in tasks.items()}}

    root = Path(cache_dir).expanduser() if cache_dir else data_root() / "wordnet_qa"
    out = cached_build(root / f"wordnet-qa-{spec_key(spec)}", {"spec": spec}, build)
    path = out / "tasks.json"
    return tasks_from_json(json.loads(path.read_text()), str(path)), out


class WordNetQADataModule(MultipleChoiceDataModule):
    """The embedded WordNet-QA benchmark (this module's build), leave-one-task-out.

    Args:
        root: WordNet database directory (None: found as :func:`datamodules.wordnet.find_wordnet` does).
        cache_dir: where the built tasks are cached (None: ``$METAZOO_DATA/wordnet_qa``).
        tasks / split_test / split_dev / max_train / split_seed: the build (see ``build_tasks``).
        Other arguments: :class:`MultipleChoiceDataModule`.
    """

    def __init__(self, target: str = "antonym", root: str | None = None, cache_dir: str | None = None,
                 tasks: list[str] | None = None, split_test: int = 300, split_dev: int = 100, max_train: int = 1200,
                 split_seed: int = 0, **kwargs: Any):
        super().__init__(target, **kwargs)
        self.root, self.cache_dir = root, cache_dir
        self.build_params = {"test_size": split_test, "dev_size": split_dev, "max_train": max_train,
                             "split_seed": split_seed}
        if tasks is not None:
            self.build_params["tasks"] = list(tasks)

    def load_tasks(self) -> dict[str, MCTask]:
        tasks, _ = load_or_build(find_wordnet(self.root), self.cache_dir, **self.build_params)
        return tasks

    def prepare_data(self) -> None:
        self.load_tasks()  # build the cache once, before DDP ranks read it
