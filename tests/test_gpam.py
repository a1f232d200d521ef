"""GPAM and its NOTA baselines: the loss pieces by hand, learning, checkpoints, bad arguments."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules.relations import RelationDataModule
from datamodules.text import TextSource
from fixtures.text.shared import load_encoder
from zoo.methods.gpam import (GPAM, VIEWS, ProtoNOTA, boundary_predict, class_radius, gaussian_distance, gaussian_prototypes,
                      gpam_loss_terms, nota_counts, nota_f1, semi_factual_views, tune_threshold)
from zoo.nn.relation_encoder import EntityMarkerEncoder, entity_window, mark_entities

# -- pure pieces, by hand --------------------------------------------------------------------------------------------


def test_semi_factual_views_replace_entities_and_shift_spans():
    toks = ["the", "big", "dog", "bit", "Bob"]
    views = semi_factual_views(toks, [1, 2], [4, 4], "animal", "male person", ["the", "large", "dog", "bit", "Bob"])
    assert views[0] == (toks, [1, 2], [4, 4])
    assert views[1] == (["the", "animal", "bit", "Bob"], [1, 1], [3, 3])  # head shorter: the tail moves left
    assert views[2] == (["the", "big", "dog", "bit", "male", "person"], [1, 2], [4, 5])
    assert views[3] == (["the", "large", "dog", "bit", "Bob"], [1, 2], [4, 4])
    with pytest.raises(ValueError, match="unknown view"):
        semi_factual_views(toks, [1, 2], [4, 4], "a", "b", toks, ["main", "both"])


def test_gaussian_prototypes_by_hand():
    feats = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # one class, two samples
    mu, var = gaussian_prototypes(feats, eps=0.0)
    assert mu.tolist() == [[2.0, 0.0]] and var.tolist() == [[1.0, 0.0]]
    # shrinkage 2 toward a prior of 4: (2 * 1 + 2 * 4) / 4 = 2.5 and (0 + 8) / 4 = 2
    _, var = gaussian_prototypes(feats, torch.tensor([4.0, 4.0]), shrinkage=2.0, eps=0.0)
    assert var.tolist() == [[2.5, 2.0]]


def test_gaussian_distance_by_hand():
    q = torch.tensor([[1.0, 2.0]])
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    var = torch.tensor([[1.0, 4.0], [math.e, math.e]])
    # class 0: ((1/1 + 4/4) + (0 + log 4)) / 2 = (2 + log 4) / 2; class 1: (0 + 0 + 1 + 1) / 2 = 1
    assert torch.allclose(gaussian_distance(q, mu, var), torch.tensor([[(2 + math.log(4)) / 2, 1.0]]))
    assert torch.allclose(gaussian_distance(q, mu, torch.ones_like(mu)), torch.tensor([[2.5, 0.0]]))


def test_class_radius_by_hand():
    var = torch.tensor([[math.e, math.e], [1.0, 1.0]])  # mean log variance 1 and 0
    a, b = torch.tensor(0.5), torch.tensor(-0.25)
    assert torch.allclose(class_radius(var, a, b), torch.tensor([1 + 1 + 0.5 - 0.25, 1 + 0 + 0 - 0.25]))
    assert torch.allclose(class_radius(var, a, b, adaptive=False), torch.tensor([0.75, 0.75]))
    # point metric: e_c = mean variance 2 and 4, r = 1.5 e_c - 0.25
    spread = torch.tensor([[1.0, 3.0], [4.0, 4.0]])
    assert torch.allclose(class_radius(spread, a, b, metric="point"), torch.tensor([2.75, 5.75]))
    with pytest.raises(ValueError, match="metric"):
        class_radius(spread, a, b, metric="cosine")


def test_gpam_loss_terms_by_hand():
    dist = torch.tensor([[1.0, 3.0], [2.0, 0.5], [4.0, 1.0]])
    radius = torch.tensor([1.5, 1.0])
    labels = torch.tensor([0, 0, 2])  # two known queries of class 0, one NOTA
    t = gpam_loss_terms(dist, radius, labels, tau=1.0, margin=0.5, negatives="nota")
    ce = (-torch.log_softmax(-dist[:2], 1)[:, 0]).mean()
    assert torch.allclose(t["contrastive"], ce)
    assert torch.allclose(t["range"], torch.tensor((0.0 + 0.5) / 2))  # max(0, 1-1.5), max(0, 2-1.5)
    # NOTA row: max(0, 1.5 + .5 - 4) = 0, max(0, 1 + .5 - 1) = .5
    assert torch.allclose(t["margin"], torch.tensor(0.25))
    t = gpam_loss_terms(dist, radius, labels, tau=1.0, margin=0.5, negatives="nota+other")
    # plus the known queries against class 1: max(0, 1.5 - 3) = 0, max(0, 1.5 - 0.5) = 1
    assert torch.allclose(t["margin"], torch.tensor((0 + 0.5 + 0 + 1) / 4))
    only_nota = gpam_loss_terms(dist[2:], radius, labels[2:])
    assert only_nota["contrastive"] == 0 and only_nota["range"] == 0


def test_boundary_prediction_counts_and_f1_by_hand():
    dist = torch.tensor([[1.0, 3.0], [2.0, 0.5], [4.0, 1.2]])
    pred = boundary_predict(dist, torch.tensor([1.5, 1.0]))
    assert pred.tolist() == [0, 1, 2]  # the last is nearest class 1 but outside its radius 1.0
    counts = nota_counts(pred, torch.tensor([0, 2, 2]), 2)
    assert counts.tolist() == [2, 3, 1, 0, 1]  # correct, queries, NOTA tp, fp, fn
    assert nota_f1(1, 0, 1) == (1.0, 0.5, 2 * 0.5 / 1.5) and nota_f1(0, 0, 0) == (0.0, 0.0, 0.0)


def test_threshold_maximises_accuracy_over_n_plus_one_by_hand():
    best = torch.tensor([0.1, 0.2, 0.5, 0.9, 1.0])
    correct = torch.tensor([True, True, False, False, False])
    nota = torch.tensor([False, False, True, True, False])
    # t in (0.2, 0.5): 2 correct known + 2 NOTA caught = 4 of 5; the midpoint is 0.35
    assert tune_threshold(best, correct, nota) == pytest.approx(0.35)
    assert tune_threshold(best, torch.ones(5, dtype=torch.bool), torch.zeros(5, dtype=torch.bool)) == 2.0


# -- learning ---------------------------------------------------------------------------------------------------------

WORDS = {0: ("owns", "bought"), 1: ("founded", "started"), 2: ("visited", "toured"), 3: ("married", "wed"),
         4: ("sued", "accused"), 5: ("praised", "thanked")}
NAMES = ["Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]


def synthetic_relations() -> TextSource:
    tokens, heads, tails, labels = [], [], [], []
    for rel, verbs in WORDS.items():
        for i in range(8):
            h, t = NAMES[i % 10], NAMES[(i * 3 + rel + 1) % 10]
            tokens.append([h, verbs[i % 2], t, "last", "year"])
            heads.append([0, 0])
            tails.append([2, 2])
            labels.append(rel)
    return TextSource([" ".join(t) for t in tokens], labels, {r: v[0] for r, v in WORDS.items()},
                      {"tokens": tokens, "head": torch.tensor(heads), "tail": torch.tensor(tails),
                       "head_type": ["person"] * len(tokens), "tail_type": ["person"] * len(tokens),
                       "context_tokens": tokens})


class Synthetic(RelationDataModule):
    def build_sources(self):
        return {s: synthetic_relations() for s in ("train", "val", "test")}


def synthetic(**kw) -> Synthetic:
    args = dict(n_way=3, k_shot=1, q_query=2, train_episodes=20, val_episodes=6, test_episodes=6,
                test_na_rates=[0.3, 0.5])
    return Synthetic(**{**args, **kw})


@pytest.fixture(scope="module")
def minilm():
    return load_encoder(max_length=32)


def adam(params):
    return torch.optim.Adam(params, lr=3e-3)


# the FewRel NOTA logit (min class logit - 1) can never win, so its NOTA queries keep a loss floor
@pytest.mark.parametrize("cls, kw, factor", [(GPAM, {}, 0.7), (ProtoNOTA, {}, 0.7), (ProtoNOTA, {"nota": "logit"}, 0.95)])
def test_loss_falls(minilm, cls, kw, factor):
    torch.manual_seed(0)
    model = cls(minilm, projection_dim=32, optimizer=adam, **kw)
    episodes = [synthetic().dataset("train")[(0, i)] for i in range(6)]

    def mean_loss():
        with torch.no_grad():
            return sum(float(model.episode_outputs(e)[0]) for e in episodes) / len(episodes)

    before = mean_loss()
    opt = adam(model.parameters())
    for _ in range(6):
        for e in episodes:
            opt.zero_grad()
            model.episode_outputs(e)[0].backward()
            opt.step()
    assert mean_loss() < factor * before


def fit(model, dm, tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/acc", mode="max")
    trainer = pl.Trainer(max_epochs=2, logger=False, callbacks=[ckpt], enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return trainer, ckpt


@pytest.mark.parametrize("cls", [GPAM, ProtoNOTA])
def test_fit_checkpoint_test_round_trip(minilm, tmp_path, cls):
    torch.manual_seed(0)
    dm = synthetic()
    trainer, ckpt = fit(cls(minilm, projection_dim=16, optimizer=adam), dm, tmp_path)
    first = trainer.test(ckpt_path=ckpt.best_model_path, datamodule=dm, verbose=False)
    keys = {k for r in first for k in r}
    assert {"test/nota0.3/acc", "test/nota0.3/acc_ci95", "test/nota0.5/nota_f1"} <= keys
    saved = torch.load(ckpt.best_model_path, weights_only=True)
    assert not any(k.startswith("entities.encoder.model.") for k in saved["state_dict"])  # frozen MiniLM not stored
    fresh = cls.load_from_checkpoint(ckpt.best_model_path, encoder=minilm, weights_only=True)
    if cls is ProtoNOTA:
        assert torch.isfinite(fresh.threshold) and fresh.threshold == trainer.lightning_module.threshold
    again = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).test(
        fresh, datamodule=synthetic(), verbose=False)
    assert again == first
    rows = trainer.lightning_module.records["test"]
    assert len(rows) == 12 and {r["na_rate"] for r in rows} == {0.3, 0.5}


def test_bad_arguments_are_named(minilm):
    with pytest.raises(ValueError, match="views must start with 'main'"):
        GPAM(minilm, views=["head"])
    with pytest.raises(ValueError, match="prototype"):
        GPAM(minilm, prototype="mixture")
    with pytest.raises(ValueError, match="nota must be"):
        ProtoNOTA(minilm, nota="max")
    with pytest.raises(ValueError, match="val_na_rate"):
        synthetic(val_na_rate=1.0)
    e = synthetic().dataset("train")[(0, 0)]
    e.extras["tail"] = e.extras["tail"].clone()
    e.extras["tail"][4] = torch.tensor([7, 7])
    with pytest.raises(ValueError, match=r"item 4 .*tail span \[7, 7\] is outside its 5 tokens"):
        GPAM(minilm, projection_dim=8).episode_outputs(e)


def test_entities_that_alone_do_not_fit_name_the_instance_and_the_length_needed():
    enc = load_encoder(max_length=8)  # 6 sub-words besides [CLS] and [SEP]
    e = synthetic().dataset("train")[(0, 0)]
    e.extras["tokens"][0] = ["x"] * 20 + e.extras["tokens"][0]
    e.extras["head"] = e.extras["head"] + torch.tensor([[20, 20]] + [[0, 0]] * (len(e.extras["head"]) - 1))
    e.extras["tail"] = e.extras["tail"] + torch.tensor([[20, 20]] + [[0, 0]] * (len(e.extras["tail"]) - 1))
    # "@ Alice @ owns # Bob #" alone is 7 sub-words
    with pytest.raises(ValueError, match=r"item 0 .*take 7 sub-words.*raise max_length to at least 9"):
        GPAM(enc, projection_dim=8, views=["main"]).episode_outputs(e)


def test_entity_window_by_hand():
    # "ab cd ef gh": "ab" and "gh" are two sub-words each; the entities (with markers) are the characters of "cd ef"
    text = "ab cd ef gh"
    offsets = [(0, 1), (1, 2), (3, 5), (6, 8), (9, 10), (10, 11)]
    # budget 4: entities are sub-words 2-3, one spare sub-word each side -> 1..4, shrunk to whole words -> 2..3
    assert entity_window(offsets, text, 3, 8, 4) == (3, 8)
    assert entity_window(offsets, text, 3, 8, 6) == (0, 11)  # it fits: all of it
    # budget 5 with the entity at the end: the window shifts left (2..5 -> starts at "cd")
    assert entity_window(offsets, text, 9, 11, 5) == (3, 11)
    with pytest.raises(ValueError, match="take 4 sub-words"):
        entity_window(offsets, text, 0, 8, 3)


def test_a_sentence_whose_entities_lie_past_128_sub_words_is_encoded_through_a_window():
    enc = EntityMarkerEncoder(load_encoder(max_length=128))
    tokens = ["x"] * 200 + ["Alice", "owns", "Bob"] + ["y"] * 10
    text, h, t, hm, tm = mark_entities(tokens, [200, 200], [202, 202])
    assert len(enc.encoder.tokenizer(text, add_special_tokens=False)["input_ids"]) == 217  # one sub-word per word
    # 126 sub-words of budget; the 7 of "@ Alice @ owns # Bob #" and 10 "y" to the right leave 109 "x" on the left
    short = ["x"] * 109 + ["Alice", "owns", "Bob"] + ["y"] * 10
    cut, _ = enc.windowed([text], [(h, t, hm, tm)], ["long"])
    assert cut == [mark_entities(short, [109, 109], [111, 111])[0]]
    got = enc([(tokens, [200, 200], [202, 202])])
    assert torch.allclose(got, enc([(short, [109, 109], [111, 111])]), atol=1e-5)


def test_point_ablation_keeps_an_adaptive_radius(minilm):
    """Unit variance in the distance, but each class's radius still follows its support views' spread (the old
    ablation set var = 1, so every class got radius 1 + b)."""
    torch.manual_seed(0)
    e = synthetic(k_shot=2).dataset("train")[(0, 0)]
    model = GPAM(minilm, projection_dim=16, prototype="point")
    dist, radius = model.distances(e)
    assert radius.unique().numel() == e.n_way
    feats = model.view_features(e, VIEWS)
    support = feats[:, : e.n_way * 2].transpose(0, 1).reshape(e.n_way, 2 * len(VIEWS), -1)
    mu, var = gaussian_prototypes(support, model.log_prior_var.exp(), model.shrinkage)
    assert torch.allclose(radius, var.mean(-1) * (1 + model.radius_a) + model.radius_b)
    query = feats[:, e.n_way * 2:].mean(0)
    assert torch.allclose(dist, (query.unsqueeze(1) - mu).pow(2).mean(-1), atol=1e-5)


def test_multi_view_protonet_averages_the_views_as_gpam_does(minilm):
    torch.manual_seed(0)
    e = synthetic(k_shot=2).dataset("train")[(0, 0)]
    model = ProtoNOTA(minilm, projection_dim=16, views=list(VIEWS))
    feats = model.view_features(e, VIEWS)  # [V, items, d]
    ns = e.n_way * 2
    protos = feats[:, :ns].transpose(0, 1).reshape(e.n_way, 2 * len(VIEWS), -1).mean(1)
    query = feats[:, ns:].mean(0)
    assert torch.allclose(model.distances(e), (query.unsqueeze(1) - protos).pow(2).mean(-1), atol=1e-5)
    main_only = ProtoNOTA(minilm, projection_dim=16)
    main_only.load_state_dict(model.state_dict())
    assert not torch.allclose(main_only.distances(e), model.distances(e))  # the views change what it sees
    with pytest.raises(ValueError, match="views must start with 'main'"):
        ProtoNOTA(minilm, views=["tail"])


@pytest.mark.slow
def test_cli_fits_and_tests_the_shipped_wordnet_rel_config(tmp_path):
    """The shipped config end to end on the real WordNet-Rel (built under $METAZOO_DATA on first use)."""
    from support import ROOT
    from zoo.cli.commands import main

    main(["fit", "--config", str(ROOT / "configs/gpam/wordnet-rel.yaml"), "--config",
          str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}",
          "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--data.train_episodes=3",
          "--data.val_episodes=2", "--data.test_episodes=2"])
    run = next((tmp_path / "csv").iterdir())
    assert next((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "test_episodes.csv").read_text().splitlines()[0].endswith("na_rate")
