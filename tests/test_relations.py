"""Relation episodes with NOTA, the WordNet-Rel build, FewRel files as NOTA episodes, entity spans through a tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.relations import FewRelNOTADataModule, NotaEpisodeDataset, RelationDataModule, check_na_rate
from datamodules.relations.views import SynonymTable, context_debiased
from datamodules.relations.wordnet_rel import RELATIONS, build_relations, deal_splits, load_or_build, relation_sources
from datamodules.text import TextSource
from datamodules.wordnet import find_wordnet, read_wordnet
from support import ROOT
from zoo.nn.relation_encoder import mark_entities, subword_span

FIX = ROOT / "tests" / "fixtures" / "text"
WN_FIX = FIX / "wordnet"


def toy_source(n_classes: int = 8, per_class: int = 12) -> TextSource:
    labels = [c for c in range(n_classes) for _ in range(per_class)]
    return TextSource([f"r{c} item {i}" for i, c in enumerate(labels)], labels, {c: f"rel{c}" for c in range(n_classes)})


# -- NOTA episodes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, protocol", [(1.0, "dproto"), (-0.1, "dproto"), (1.5, "thunlp"), (-1, "thunlp")])
def test_na_rate_outside_its_range_is_an_error_naming_it(rate, protocol):
    with pytest.raises(ValueError, match="train_na_rate"):
        check_na_rate(rate, protocol, "train_na_rate")
    with pytest.raises(ValueError, match="na_rate"):
        NotaEpisodeDataset(toy_source(), 3, 1, 2, seed=0, split="train", na_rate=rate, protocol=protocol)


def test_dproto_nota_rate_is_the_probability_of_a_nota_query():
    src = toy_source()
    ds = NotaEpisodeDataset(src, 3, 1, 4, seed=0, split="test", na_rate=0.3)
    nota = total = 0
    for i in range(300):
        items, classes, y = ds.draw_nota(0, i)
        e = ds[(0, i)]
        assert torch.equal(e.query_y, y) and e.n_way == 3
        assert (y[1:] >= y[:-1]).all()  # known class-major, NOTA last
        assert len(set(items.tolist())) == len(items)  # no query repeats a support item or another query
        query_classes = src.labels[items[3:]]
        episode_classes = set(ds.class_ids[classes].tolist())
        assert all(int(c) not in episode_classes for c in query_classes[y == 3])  # NOTA from outside the N
        assert all(int(ds.class_ids[classes[int(l)]]) == int(c) for c, l in zip(query_classes[y < 3], y[y < 3]))
        nota += int((y == 3).sum())
        total += len(y)
    assert total == 300 * 12
    assert abs(nota / total - 0.3) < 0.03  # 3600 Bernoulli(0.3) draws: sd 0.008


def test_thunlp_protocol_adds_na_rate_times_q_nota_queries():
    ds = NotaEpisodeDataset(toy_source(), 3, 1, 2, seed=0, split="val", na_rate=2, protocol="thunlp")
    y = ds[(0, 0)].query_y
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]


def test_a_relation_with_too_few_instances_is_named_with_its_counts():
    src = toy_source()
    src.labels[:9] = 99  # rel0 keeps 3 instances
    src.class_names[99] = "rel99"
    with pytest.raises(ValueError, match=r"'rel0' has 3"):
        NotaEpisodeDataset(src, 3, 1, 4, seed=0, split="train", na_rate=0.3)


def test_nota_needs_relations_outside_the_episode():
    with pytest.raises(ValueError, match="relations outside"):
        NotaEpisodeDataset(toy_source(n_classes=3), 3, 1, 2, seed=0, split="train", na_rate=0.3)


class ToyRelations(RelationDataModule):
    def build_sources(self):
        return {s: toy_source() for s in ("train", "val", "test")}


def test_test_sets_per_rate_share_their_support_sets_and_differ_in_queries():
    dm = ToyRelations(n_way=3, k_shot=1, q_query=4, test_episodes=5, test_na_rates=[0.15, 0.5])
    loaders = dm.test_dataloader()
    assert len(loaders) == 2
    a, b = next(iter(loaders[0])), next(iter(loaders[1]))
    assert a.support_x == b.support_x and torch.equal(a.classes, b.classes)
    with pytest.raises(ValueError, match=r"test_na_rates\[1\]"):
        ToyRelations(test_na_rates=[0.15, 1.0])


# -- WordNet-Rel -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_wordnet():
    return read_wordnet(find_wordnet(WN_FIX))


def test_wordnet_rel_build_on_the_fixture(fixture_wordnet):
    bench = build_relations(fixture_wordnet, min_per_relation=2, max_per_relation=5, synonym_rate=0.5)
    rels, inst = bench["relations"], bench["instances"]
    assert len(rels) >= 2 and inst  # the fixture holds hypernym pointers only
    assert bench == build_relations(fixture_wordnet, min_per_relation=2, max_per_relation=5, synonym_rate=0.5)
    family_split: dict[str, str] = {}
    for r in rels:  # a relation and its inverse share a split
        assert family_split.setdefault(r["family"], r["split"]) == r["split"]
    for row in inst:
        toks = row["tokens"]
        h, t = row["head"], row["tail"]
        head_lemma = fixture_wordnet.synsets[row["head_key"]].lemmas[0].replace("_", " ")
        assert " ".join(toks[h[0]: h[1] + 1]) == head_lemma
        assert " ".join(toks[t[0]: t[1] + 1]) == fixture_wordnet.synsets[row["tail_key"]].lemmas[0].replace("_", " ")
        assert len(row["context_tokens"]) == len(toks)
        assert row["context_tokens"][h[0]: h[1] + 1] == toks[h[0]: h[1] + 1]
        # the template is the same for every relation: two lemma-colon-definition parts joined by one ";"
        colon_after = [toks[h[1] + 1], toks[t[1] + 1]]
        assert colon_after == [":", ":"] and toks[min(h[0], t[0])] == toks[0]
        assert row["head_type"] and row["tail_type"]
        other = fixture_wordnet.synsets[row["tail_key"]].lemmas[0].replace("_", " ").lower()
        assert row["head_type"] != other or fixture_wordnet.synsets[row["head_key"]].pos != "n"


def test_no_template_word_tells_the_relation():
    """The words outside the two entity lemmas and definitions are ':' ':' ';' in every instance of every relation."""
    wn = read_wordnet(find_wordnet(WN_FIX))
    bench = build_relations(wn, min_per_relation=1, max_per_relation=50, synonym_rate=0.0)
    for row in bench["instances"]:
        h, t = wn.synsets[row["head_key"]], wn.synsets[row["tail_key"]]
        parts = [len(h.lemmas[0].split("_")), len(t.lemmas[0].split("_"))]
        first = row["head"] if row["head"][0] == 0 else row["tail"]
        second = row["tail"] if first is row["head"] else row["head"]
        toks = row["tokens"]
        assert toks[first[1] + 1] == ":" and toks[second[0] - 1] == ";" and toks[second[1] + 1] == ":"
        assert parts  # lemmas were found


def test_splits_are_relation_disjoint_and_dealt_by_share():
    sizes = {f"f{i}": 2 if i % 3 == 0 else 1 for i in range(12)}
    out = deal_splits(sorted(sizes), sizes, [0.5, 0.25, 0.25], seed=0)
    count = {s: sum(sizes[f] for f in out if out[f] == s) for s in ("train", "val", "test")}
    assert sum(count.values()) == 16 and count["train"] == 8 and count["val"] == 4 and count["test"] == 4
    assert len({r[0] for r in RELATIONS}) == len(RELATIONS) >= 24


def test_wordnet_rel_is_cached_with_a_manifest(tmp_path):
    params = {"min_per_relation": 2, "max_per_relation": 5, "split_fractions": [0.5, 0.25, 0.25], "split_seed": 0,
              "synonym_rate": 0.15}
    bench, path = load_or_build(str(WN_FIX), tmp_path, params)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["spec"]["params"] == params and "relations.json" in manifest["files"]
    again, same = load_or_build(str(WN_FIX), tmp_path, params)
    assert same == path and again == bench
    sources = relation_sources(bench)
    for split, src in sources.items():
        assert set(src.fields) == {"tokens", "head", "tail", "head_type", "tail_type", "context_tokens"}
        assert all(bench["relations"][int(c)]["split"] == split for c in src.labels.unique())


@pytest.mark.slow
def test_the_full_wordnet_rel_has_enough_relations_per_split():
    from datamodules.relations import WordNetRelDataModule

    dm = WordNetRelDataModule(n_way=5, k_shot=5, q_query=3)
    dm.setup()
    rels = dm.benchmark["relations"]
    assert len(rels) >= 24
    assert min(sum(r["split"] == s for r in rels) for s in ("train", "val", "test")) >= 8


def test_synonyms_replace_context_words_only(fixture_wordnet):
    table = SynonymTable(fixture_wordnet)
    assert len(table) > 0
    word = next(iter(table.synonyms))
    toks = ["alpha", word, "beta", word, word]
    out = context_debiased(toks, [0, 0], [2, 2], 1.0, "k", table)
    assert out[0] == "alpha" and out[2] == "beta" and all(w in table.get(word) for w in out[3:])
    assert context_debiased(toks, [0, 0], [2, 2], 0.0, "k", table) == toks


# -- FewRel ----------------------------------------------------------------------------------------------------------

def test_fewrel_files_become_nota_episodes_with_types(tmp_path):
    (tmp_path / "types.json").write_text(json.dumps({"Q1": "product kind"}))
    for f in ("train_wiki.json", "val_wiki.json", "test_wiki.json", "pid2name.json"):
        (tmp_path / f).write_text((FIX / "fewrel" / f).read_text())
    dm = FewRelNOTADataModule(root=str(tmp_path), qid_types="types.json", synonym_rate=0.0, pid2name="pid2name.json",
                    n_way=2, k_shot=1, q_query=2, train_na_rate=0.5, val_na_rate=0.3, test_na_rates=[0.3])
    dm.setup()
    src = dm.sources["train"]
    assert src.fields["head_type"][0] == "product kind" and src.fields["tail_type"][0] == "entity"
    e = next(iter(dm.train_dataloader()))
    assert len(e.extras["tokens"]) == len(e.support_x) + len(e.query_x)


def test_a_file_that_is_not_fewrel_shaped_names_the_file_and_the_bad_instance(tmp_path):
    for f in ("val_wiki.json", "test_wiki.json"):
        (tmp_path / f).write_text((FIX / "fewrel" / f).read_text())
    (tmp_path / "train_wiki.json").write_text((FIX / "fewrel" / "bad_span.json").read_text())
    dm = FewRelNOTADataModule(root=str(tmp_path), synonym_rate=0.0, n_way=2, k_shot=1, q_query=1)
    with pytest.raises(ValueError, match=r"train_wiki.json: relation 'P17', instance 1"):
        dm.setup()
    (tmp_path / "train_wiki.json").write_text(json.dumps([{"text": ["a"], "label": 0}]))
    with pytest.raises(ValueError, match=r"train_wiki.json: expected a non-empty object"):
        FewRelNOTADataModule(root=str(tmp_path), synonym_rate=0.0, n_way=2, k_shot=1, q_query=1).setup()


# -- entity spans through the tokenizer ------------------------------------------------------------------------------

def test_entity_spans_survive_tokenisation():
    from fixtures.text.shared import load_encoder

    tok = load_encoder().tokenizer
    tokens = ["The", "Eiffel", "Tower", "stands", "in", "Paris", ",", "France", "."]
    text, h_chars, t_chars, h_mark, t_mark = mark_entities(tokens, [1, 2], [5, 5])
    assert text == "The @ Eiffel Tower @ stands in # Paris # , France ."
    assert text[slice(*h_chars)] == "Eiffel Tower" and text[slice(*t_chars)] == "Paris"
    assert text[h_mark] == "@" and text[t_mark] == "#"
    enc = tok([text], return_offsets_mapping=True)
    offsets = torch.tensor(enc["offset_mapping"][0])
    ids = enc["input_ids"][0]
    for chars, words in ((h_chars, "eiffel tower"), (t_chars, "paris")):
        first, last = subword_span(offsets, *chars)
        assert tok.decode(ids[first: last + 1]) == words
    with pytest.raises(ValueError, match="item 7.*tail span"):
        mark_entities(tokens, [1, 2], [9, 9], where="item 7")


# -- FewRel 2.0 NYT + SemEval, shipped -------------------------------------------------------------------------------

def test_the_shipped_nyt_semeval_files_are_verified_and_split_relation_disjointly():
    from datamodules.relations.fewrel import NYT_SEMEVAL_SPLITS, SHIPPED, SHIPPED_SHA256, nyt_semeval_sources

    readme = (SHIPPED / "README.md").read_text()
    assert all(f"{sha}  {name}" in readme for name, sha in SHIPPED_SHA256.items())
    assert (SHIPPED / "LICENSE").read_text().startswith("MIT License")
    names = [r for split in NYT_SEMEVAL_SPLITS.values() for rels in split.values() for r in rels]
    assert len(names) == len(set(names)) == 42  # every relation of both files, each in one split
    src = nyt_semeval_sources(max_per_relation=30)
    sizes = {s: len(v.class_names) for s, v in src.items()}
    assert sizes == {"train": 22, "val": 10, "test": 10}
    assert not set(src["train"].class_names) & set(src["test"].class_names)
    counts = torch.bincount(src["val"].labels)
    assert counts[counts > 0].tolist() == [30] * 10
    # both directions of a SemEval relation type stay in one split
    for split in NYT_SEMEVAL_SPLITS.values():
        kinds = {r.split("(")[0] for r in split["val_semeval.json"]}
        assert all({f"{k}(e1,e2)", f"{k}(e2,e1)"} & set(split["val_semeval.json"]) for k in kinds)
    assert nyt_semeval_sources(max_per_relation=30)["test"].items == src["test"].items  # the same sample every time


def test_a_modified_shipped_file_is_refused(tmp_path):
    from datamodules.relations.fewrel import SHIPPED, nyt_semeval_sources

    for f in SHIPPED.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "val_nyt.json").write_bytes((SHIPPED / "val_nyt.json").read_bytes()[:-10] + b"   ]}]}    ")
    with pytest.raises(ValueError, match=r"val_nyt.json has sha256 [0-9a-f]{64}, expected b519adc6"):
        nyt_semeval_sources(root=tmp_path)
    (tmp_path / "pid2name.json").unlink()
    with pytest.raises(FileNotFoundError, match="pid2name.json is missing"):
        nyt_semeval_sources(root=tmp_path)


def test_nyt_semeval_episodes_carry_generic_entity_types():
    from datamodules.relations import FewRelNYTSemEvalDataModule

    dm = FewRelNYTSemEvalDataModule(max_per_relation=10, synonym_rate=0.0, n_way=5, k_shot=1, q_query=3, test_na_rates=[0.3])
    dm.setup()
    assert set(dm.sources["train"].fields["head_type"]) == {"entity"}
    e = next(iter(dm.test_dataloader()[0]))
    assert len(e.extras["tokens"]) == len(e.support_x) + len(e.query_x) and e.n_way == 5
    with pytest.raises(ValueError, match="max_per_relation"):
        FewRelNYTSemEvalDataModule(max_per_relation=0, n_way=5, k_shot=1, q_query=3)


def test_the_fewrel_nyt_semeval_config_fits_from_the_shipped_files(tmp_path):
    """The shipped config end to end, a tiny fit: nothing but the package's files (and WordNet for synonyms)."""
    from zoo.cli.commands import main

    main(["fit", "--config", str(ROOT / "configs/gpam/fewrel-nyt-semeval.yaml"), "--config",
          str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}",
          "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--data.train_episodes=2",
          "--data.val_episodes=2", "--data.test_episodes=2", "--data.max_per_relation=8", "--data.synonym_rate=0",
          "--data.test_na_rates=[0.3]"])
    run = next((tmp_path / "csv").iterdir())
    assert next((run / "checkpoints").glob("best-*.ckpt"))
    assert "test/nota0.3/acc" in (run / "metrics.csv").read_text().splitlines()[0]
