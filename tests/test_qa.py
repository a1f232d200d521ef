"""The multiple-choice task layer: items, low-resource subsets, readers (and their errors), WordNet-QA's
construction on a hand-made WordNet, and the multi-source data module's batches."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.qa import MCItem, MCTask, MultipleChoiceDataModule, low_resource, make_item, read_items
from datamodules.qa.wordnet_qa import build_task, build_tasks
from datamodules.wordnet import Synset, WordNet


# -- items ------------------------------------------------------------------------------------------------------

def test_item_errors_name_the_record():
    with pytest.raises(ValueError, match=r"f\.jsonl:7: answer 3 is not among the 2 choices"):
        make_item("", "q?", ["a", "b"], 3, "f.jsonl:7")
    with pytest.raises(ValueError, match=r"f\.jsonl:2: .* needs 2\.\.5 choices, got 1"):
        make_item("", "q?", ["a"], 0, "f.jsonl:2")
    with pytest.raises(ValueError, match="choice 1 is empty"):
        make_item("", "q?", ["a", " "], 0, "x")
    assert make_item("ctx", "q?", ["a", "b"], 1, "x").prompt == "ctx q?"


def test_low_resource_is_deterministic_nested_and_checked():
    items = [make_item("", f"q{i}?", ["a", "b"], 0, "x") for i in range(20)]
    small, large = low_resource(items, 4, seed=3), low_resource(items, 8, seed=3)
    assert small == low_resource(items, 4, seed=3) and large[:4] == small
    assert low_resource(items, 4, seed=4) != small
    with pytest.raises(ValueError, match="target size 21 is larger than its train set \\(20 items\\)"):
        low_resource(items, 21, seed=0)


# -- readers ----------------------------------------------------------------------------------------------------

def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_readers_read_each_format(tmp_path):
    csqa = _jsonl(tmp_path / "csqa.jsonl", [{"id": "a1", "answerKey": "B", "question": {
        "stem": "Where is a river?", "choices": [{"label": "A", "text": "desk"}, {"label": "B", "text": "valley"}]}}])
    assert read_items("commonsenseqa", csqa) == [MCItem("", "Where is a river?", ("desk", "valley"), 1, "a1")]
    siqa = _jsonl(tmp_path / "siqa.jsonl", [{"context": "Kim ate.", "question": "Why?", "answerA": "hungry",
                                              "answerB": "bored", "answerC": "sad"}])
    (tmp_path / "siqa-labels.lst").write_text("2\n")
    assert read_items("socialiqa", siqa, str(tmp_path / "siqa-labels.lst"))[0].answer == 1  # 1-based labels
    piqa = _jsonl(tmp_path / "piqa.jsonl", [{"goal": "open a jar", "sol1": "twist", "sol2": "bite"}])
    (tmp_path / "piqa-labels.lst").write_text("0\n")
    assert read_items("piqa", piqa, str(tmp_path / "piqa-labels.lst"))[0].choices == ("twist", "bite")
    (tmp_path / "copa.xml").write_text('<copa-corpus><item id="1" asks-for="cause" most-plausible-alternative="2">'
                                       "<p>The man fell.</p><a1>He sang.</a1><a2>He slipped.</a2></item></copa-corpus>")
    copa = read_items("copa", tmp_path / "copa.xml")[0]
    assert copa.answer == 1 and copa.question == "What was the cause?"
    copa_jsonl = _jsonl(tmp_path / "copa.jsonl", [{"premise": "It rained.", "choice1": "wet", "choice2": "dry",
                                                   "question": "effect", "label": 0, "idx": 0}])
    assert read_items("copa", copa_jsonl)[0].answer == 0
    wino = _jsonl(tmp_path / "wino.jsonl", [{"qID": "w", "sentence": "The cup broke the _.", "option1": "cup",
                                             "option2": "plate", "answer": "2"}])
    assert read_items("winogrande", wino)[0].answer == 1
    hs = _jsonl(tmp_path / "hs.jsonl", [{"ind": 1, "ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 3}])
    assert read_items("hellaswag", hs)[0].answer == 3
    (tmp_path / "cosmos.csv").write_text("id,context,question,answer0,answer1,answer2,answer3,label\n"
                                         "c1,ctx,why?,a,b,c,d,2\n")
    assert read_items("cosmosqa", tmp_path / "cosmos.csv")[0].answer == 2


def test_reader_errors_name_file_line_and_field(tmp_path):
    bad_key = _jsonl(tmp_path / "csqa.jsonl", [{"answerKey": "A", "question": {
        "stem": "s", "choices": [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}},
        {"answerKey": "E", "question": {"stem": "s", "choices": [{"label": "A", "text": "x"},
                                                                  {"label": "B", "text": "y"}]}}])
    with pytest.raises(ValueError, match=r"csqa\.jsonl:2: answerKey 'E' is not among the choice labels"):
        read_items("commonsenseqa", bad_key)
    missing = _jsonl(tmp_path / "hs.jsonl", [{"ctx": "A man", "label": 0}])
    with pytest.raises(ValueError, match=r"hs\.jsonl:1: field 'endings' is missing"):
        read_items("hellaswag", missing)
    out_of_range = _jsonl(tmp_path / "wino.jsonl", [{"sentence": "a _ b", "option1": "x", "option2": "y",
                                                     "answer": "3"}])
    with pytest.raises(ValueError, match=r"wino\.jsonl:1: answer 2 is not among the 2 choices"):
        read_items("winogrande", out_of_range)
    one_choice = _jsonl(tmp_path / "hs1.jsonl", [{"ctx": "A", "endings": ["only"], "label": 0}])
    with pytest.raises(ValueError, match=r"hs1\.jsonl:1: .*2\.\.5 choices, got 1"):
        read_items("hellaswag", one_choice)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not valid JSON"):
        read_items("piqa", tmp_path / "bad.jsonl", str(tmp_path / "bad.jsonl"))
    piqa = _jsonl(tmp_path / "piqa.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b"}])
    with pytest.raises(ValueError, match="separate labels file"):
        read_items("piqa", piqa)
    with pytest.raises(ValueError, match="unknown multiple-choice format 'csv'"):
        read_items("csv", piqa)


# -- WordNet-QA -------------------------------------------------------------------------------------------------

def _wordnet() -> WordNet:
    """A hand-made WordNet: a few adjective antonym pairs, nouns with hypernyms, parts and glosses."""
    syn = {}

    def add(key, pos, lex, lemmas, pointers=(), definition="", examples=()):
        syn[key] = Synset(key, pos, lex, tuple(lemmas), tuple(pointers), definition, tuple(examples))

    pairs = [("hot", "cold"), ("big", "small"), ("wet", "dry"), ("fast", "slow"), ("light", "dark"), ("old", "young")]
    for i, (a, b) in enumerate(pairs):
        ka, kb = f"{2 * i:08d}-a", f"{2 * i + 1:08d}-a"
        add(ka, "a", "adj.all", [a], [("!", kb)], f"having the quality {a}", (f"a {a} day",))
        add(kb, "a", "adj.all", [b], [("!", ka)], f"having the quality {b}", (f"a {b} night",))
    animals = ["dog", "cat", "horse", "cow", "sheep", "goat", "pig", "duck", "hen", "mule"]
    parents = ["animal", "pet", "livestock", "fowl", "creature"]
    for j, p in enumerate(parents):
        add(f"{100 + j:08d}-n", "n", "noun.animal", [p], (), f"a kind of being number {j}")
    other_names = ["mutt", "kitty", "steed", "bovine", "ewe", "billy", "hog", "drake", "chook", "hinny"]
    for i, (a, b) in enumerate(zip(animals, other_names)):
        add(f"{200 + i:08d}-n", "n", "noun.animal", [a, b], [("@", f"{100 + i % 5:08d}-n")],
            f"a domestic {a}-like creature" if i == 0 else f"a creature number {i}", (f"the {a} barked",))
    return WordNet(syn, {k: f"{s.lemmas[0]}.{s.pos}.01" for k, s in syn.items()}, {})


def test_wordnet_qa_items_have_plausible_distractors_and_no_surface_cue():
    wn = _wordnet()
    tasks = build_tasks(wn, tasks=["antonym", "hypernym", "synonym", "definition"], test_size=2, dev_size=1,
                        max_train=50, split_seed=0)
    assert tasks == build_tasks(wn, tasks=["antonym", "hypernym", "synonym", "definition"], test_size=2,
                                dev_size=1, max_train=50, split_seed=0)  # deterministic
    adjectives = {w for pair in [("hot", "cold"), ("big", "small"), ("wet", "dry"), ("fast", "slow"),
                                 ("light", "dark"), ("old", "young")] for w in pair}
    for item in tasks["antonym"].train + tasks["antonym"].test:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4
        word = item.question.removeprefix("What is the opposite of ").rstrip("?")
        assert word not in item.choices  # the question's own word is never a choice
        assert set(item.choices) <= adjectives  # distractors: same part of speech (answers of other items)
    for item in tasks["definition"].train:
        assert item.choices[item.answer] not in item.context  # a gloss naming its word is dropped
    for item in tasks["hypernym"].train:
        assert item.choices[item.answer] in ("animal", "pet", "livestock", "fowl", "creature")


def test_wordnet_qa_rejects_unknown_tasks_and_drops_items_without_distractors():
    with pytest.raises(ValueError, match="unknown task"):
        build_tasks(_wordnet(), tasks=["antonyms"])
    import random

    raw = [("", "What is the opposite of up?", "down", {"down"}, "a")]
    assert build_task("x", raw, random.Random(0)) == []  # no other answers to draw distractors from


# -- the data module --------------------------------------------------------------------------------------------

class InMemoryQA(MultipleChoiceDataModule):
    def __init__(self, tasks: dict[str, MCTask], **kw):
        super().__init__(**kw)
        self._tasks = tasks

    def load_tasks(self) -> dict[str, MCTask]:
        return self._tasks


def toy_tasks(n: int = 40) -> dict[str, MCTask]:
    def items(name, k):
        return [make_item("", f"{name} question {i}?", [f"{name} a{i}", f"{name} b{i}", f"{name} c{i}"], i % 3,
                          "x", f"{name}-{i}") for i in range(k)]
    return {name: MCTask(name, items(name, n), items(name + "dev", 10), items(name + "test", 12))
            for name in ("s1", "s2", "t")}


def test_data_module_batches_one_task_at_a_time_deterministically():
    dm = InMemoryQA(toy_tasks(), target="t", target_size=8, batch_size=4, iterations_per_epoch=3, eval_batch_size=5)
    dm.setup()
    assert dm.source_names == ["s1", "s2"] and len(dm.target_items["train"]) == 8
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["sources"]) == {"s1", "s2"}
    for name, b in batch["sources"].items():
        assert all(p.startswith(f"{name} question") for p in b["prompt"]) and b["mask"].shape == (4, 3)
    assert all(p in {x.prompt for x in dm.target_items["train"]} for p in batch["target"]["prompt"])
    again = InMemoryQA(toy_tasks(), target="t", target_size=8, batch_size=4, iterations_per_epoch=3)
    assert next(iter(again.train_dataloader()))["target"]["prompt"] == batch["target"]["prompt"]
    test = list(dm.test_dataloader())
    assert torch.cat([b["index"] for b in test]).tolist() == list(range(12))


def test_data_module_errors():
    with pytest.raises(ValueError, match="target size 41 is larger than its train set \\(40 items\\)"):
        InMemoryQA(toy_tasks(), target="t", target_size=41).setup()
    with pytest.raises(ValueError, match="target 'nope' is not a task"):
        InMemoryQA(toy_tasks(), target="nope").setup()
    with pytest.raises(ValueError, match=r"sources \['t'\] are unknown or the target"):
        InMemoryQA(toy_tasks(), target="t", sources=["t"]).setup()
