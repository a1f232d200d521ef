"""Meta-RTL: rewards, the policy gradient, EXP3 and the weighted Reptile update against hand-computed values;
the loss falls; fit -> checkpoint -> test; bad input."""

from __future__ import annotations

import hashlib

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from datamodules.qa import MCTask, MultipleChoiceDataModule, make_item
from datamodules.qa.base import mislabel
from zoo.methods.meta_rtl import (MetaRTL, exp3_probabilities, exp3_update, normalise_rewards, policy_gradient_loss,
                          source_rewards, weighted_reptile_update)
from zoo.training.rl import update_baseline


class BagOfWords(nn.Module):
    """A fixed stand-in for the text encoder: the sum of a hashed random vector per word (fast, deterministic)."""

    out_dim, freeze = 16, True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(512, self.out_dim, generator=torch.Generator().manual_seed(0)))

    def forward(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            ids = [int(hashlib.md5(w.encode()).hexdigest(), 16) % 512 for w in t.lower().split()] or [0]
            rows.append(self.table[ids].sum(0))
        return torch.stack(rows)


# -- pure pieces, by hand ---------------------------------------------------------------------------------------

def test_reward_is_general_loss_minus_task_loss_and_baseline_tracks_it():
    r = source_rewards(torch.tensor(1.0), torch.tensor([0.75, 1.25]))
    assert r.tolist() == [0.25, -0.25]  # a source that lowers the target loss earns a positive reward
    assert float(update_baseline(torch.tensor(0.0), torch.tensor([0.25, 0.75]), decay=0.9)) == pytest.approx(0.05)


def test_policy_gradient_matches_hand_computation():
    # K = 2, uniform policy, source 0 drawn, reward 1, baseline 0.5: d/dz -(r - b) log p_0 = -(0.5)(1 - p, -p)
    logits = torch.zeros(2, requires_grad=True)
    policy_gradient_loss(logits, torch.tensor([0]), torch.tensor([1.0]), 0.5, epsilon=0.0,
                         entropy_coeff=0.1).backward()
    assert logits.grad.tolist() == pytest.approx([-0.25, 0.25])  # the entropy's gradient is 0 at uniform
    # with eps = 0.2 the draw's probability is m = 0.8 p_0 + 0.1 = 0.5; d log m / dz = 0.8 p_0 (1 - p_0, -p_0) / m
    logits = torch.zeros(2, requires_grad=True)
    policy_gradient_loss(logits, torch.tensor([0]), torch.tensor([1.0]), 0.5, epsilon=0.2,
                         entropy_coeff=0.0).backward()
    assert logits.grad.tolist() == pytest.approx([-0.2, 0.2])


def test_normalise_rewards_by_hand():
    # rewards 0.01, 0.03, 0.05: mean 0.03, population std sqrt((0.0004 + 0 + 0.0004) / 3) = 0.016330
    assert normalise_rewards(torch.tensor([0.01, 0.03, 0.05])).tolist() == pytest.approx([-1.224745, 0.0, 1.224745],
                                                                                        abs=1e-5)
    assert normalise_rewards(torch.tensor([0.2])).tolist() == [0.0]  # one source drawn: nothing to compare
    assert normalise_rewards(torch.tensor([0.1, 0.1])).tolist() == [0.0, 0.0]


def test_exp3_by_hand():
    p = exp3_probabilities(torch.zeros(2), gamma=0.2)
    assert p.tolist() == pytest.approx([0.5, 0.5])
    w = exp3_update(torch.zeros(2), p, arm=1, reward=1.0, gamma=0.2)  # log w_1 += 0.2 * (1 / 0.5) / 2 = 0.2
    assert (w[1] - w[0]).item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="reward must be in"):
        exp3_update(torch.zeros(2), p, arm=0, reward=2.0, gamma=0.2)


def test_weighted_reptile_update_equals_the_formula_on_a_tiny_model():
    net = nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.bias.fill_(0.0)
    theta = dict(net.named_parameters())
    a = {"weight": torch.tensor([[3.0, 2.0]]), "bias": torch.tensor([1.0])}
    b = {"weight": torch.tensor([[1.0, 6.0]]), "bias": torch.tensor([-1.0])}
    out = weighted_reptile_update(theta, [a, b], torch.tensor([0.6, 0.2]), meta_step=0.5)
    # theta + 0.5 * (0.75 (a - theta) + 0.25 (b - theta)): weight [1 + .5(.75*2 + 0), 2 + .5(0 + .25*4)]
    assert out["weight"].flatten().tolist() == pytest.approx([1.75, 2.5])
    assert out["bias"].tolist() == pytest.approx([0.5 * (0.75 - 0.25)])
    with pytest.raises(ValueError, match="2 adapted models for 1 weights"):
        weighted_reptile_update(theta, [a, b], torch.tensor([1.0]), 1.0)


# -- the system on a toy problem -------------------------------------------------------------------------------

class Toy(MultipleChoiceDataModule):
    """Three tasks over the same rule (the answer repeats the question's key word), with different wording."""

    def load_tasks(self) -> dict[str, MCTask]:
        g = torch.Generator().manual_seed(0)
        words = [f"w{i}" for i in range(60)]

        def items(template: str, n: int, offset: int):
            out = []
            for i in range(n):
                pick = torch.randperm(60, generator=g)[:3].tolist()
                key, answer = words[pick[0]], int(torch.randint(3, (1,), generator=g))
                choices = [words[j] for j in pick[1:]]
                choices.insert(answer, key)
                out.append(make_item("", template.format(key), choices, answer, "toy", f"{offset + i}"))
            return out
        return {name: MCTask(name, items(t, 60, 0), items(t, 16, 100), items(t, 24, 200))
                for name, t in (("echo", "which is {}?"), ("copy", "repeat {} please"), ("target", "find {} now"))}


def toy_data(**kw) -> Toy:
    args = dict(target="target", target_size=16, batch_size=8, iterations_per_epoch=10, eval_batch_size=16, seed=0)
    return Toy(**{**args, **kw})


def toy_model(strategy: str = "meta_rtl", **kw) -> MetaRTL:
    args = dict(sources=["echo", "copy"], strategy=strategy, meta_iterations=10, sources_per_iteration=2,
                inner_steps=2, inner_lr=0.5, hidden=32, policy_hidden=8,
                optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    return MetaRTL(BagOfWords(), **{**args, **kw})


def trainer(tmp_path=None, epochs: int = 2, **kw) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, accelerator="cpu", default_root_dir=tmp_path,
                      enable_checkpointing=bool(kw.get("callbacks")), **kw)


@pytest.mark.parametrize("strategy", ["meta_rtl", "target_only"])
def test_loss_falls(strategy):
    pl.seed_everything(0)
    dm = toy_data()
    dm.setup()
    model = toy_model(strategy, cosine_prior=False)  # with the prior the toy rule is solved before training
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        before = float(nn.functional.cross_entropy(model(batch), batch["answer"]))
    trainer(epochs=4).fit(model, datamodule=dm)
    with torch.no_grad():
        after = float(nn.functional.cross_entropy(model(batch), batch["answer"]))
    assert after < before - 0.1
    if strategy == "meta_rtl":
        assert len(model.weight_history) == 10 and int(model.iterations_done) == 40
        assert model.weight_history[0] == pytest.approx([0.5, 0.5])  # a zero head: uniform at first
        assert model.weight_history[-1] != model.weight_history[0]  # the policy learned something


def test_cosine_prior_starts_as_the_encoders_similarity_ranking():
    dm = toy_data()
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    model = toy_model()
    enc = model.scorer.encoder
    q = enc(batch["prompt"])
    c = enc([x for row in batch["choices"] for x in row]).reshape(len(q), 3, -1)
    expected = 10.0 * nn.functional.cosine_similarity(q[:, None], c, dim=-1)
    assert torch.allclose(model(batch), expected, atol=1e-5)


@pytest.mark.parametrize("strategy", ["uniform", "exp3", "multitask"])
def test_baselines_run_in_the_same_module(strategy):
    dm = toy_data(iterations_per_epoch=4)
    model = toy_model(strategy, meta_iterations=4)
    trainer(epochs=2).fit(model, datamodule=dm)
    assert int(model.iterations_done) == 8
    if strategy == "uniform":
        assert model.weight_history == [[0.5, 0.5]] * 4


def test_fit_checkpoint_test_round_trip(tmp_path):
    pl.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/acc", mode="max", save_last=True)
    model = toy_model()
    fit = trainer(tmp_path, epochs=2, callbacks=[ckpt])
    fit.fit(model, datamodule=toy_data())
    assert (tmp_path / "source_weights.png").is_file()  # the run directory: the parent of checkpoints/
    first = fit.test(model, datamodule=toy_data(), ckpt_path=ckpt.best_model_path, verbose=False)[0]
    saved = torch.load(ckpt.best_model_path, weights_only=True)
    assert saved["hyper_parameters"]["strategy"] == "meta_rtl" and "meta_rtl_weight_history" in saved
    fresh = toy_model()
    again = trainer().test(fresh, datamodule=toy_data(), ckpt_path=ckpt.best_model_path, verbose=False)[0]
    assert again["test/acc"] == pytest.approx(first["test/acc"]) and "test/acc_ci95" in again
    assert torch.equal(fresh.scorer.head[0].weight, saved["state_dict"]["scorer.head.0.weight"])
    assert len(fresh.records["test"]) == 24


def test_mislabelled_sources_always_point_at_a_wrong_choice():
    dm = toy_data(mislabelled_sources=["copy"])
    dm.setup()
    clean = toy_data()
    clean.setup()
    for name in ("echo", "copy"):
        a, b = dm.tasks[name].train, clean.tasks[name].train
        assert [(x.prompt, x.choices) for x in a] == [(x.prompt, x.choices) for x in b]
        same = [x.answer == y.answer for x, y in zip(a, b)]
        assert all(same) if name == "echo" else not any(same)
    wrong = [x.answer for x in dm.tasks["copy"].train]
    assert len(set(wrong)) == 3 and wrong == [x.answer for x in mislabel(clean.tasks["copy"].train, "copy")]
    assert dm.tasks["copy"].dev == clean.tasks["copy"].dev  # only the training labels are harmful
    with pytest.raises(ValueError, match=r"mislabelled_sources \['target'\] are not among the sources"):
        toy_data(mislabelled_sources=["target"]).setup()


def test_reward_batches_measure_rewards_on_more_target_items():
    dm = toy_data(reward_batches=2)
    one = toy_data()
    batch, plain = next(iter(dm.train_dataloader())), next(iter(one.train_dataloader()))
    assert len(batch["reward_target"]["answer"]) == 16 and "reward_target" not in plain
    assert torch.equal(batch["target"]["index"], plain["target"]["index"])  # the training batches are unchanged
    model = toy_model(reward_normalization="iteration")
    trainer(epochs=1).fit(model, datamodule=toy_data(reward_batches=2, iterations_per_epoch=3))
    for raw, seen in zip(model.raw_reward_history, model.reward_history):
        if len(raw) == 2:  # two sources drawn: standardised to -1 and +1
            assert sorted(x for x in seen if x) == pytest.approx([-1.0, 1.0], abs=1e-4)
    with pytest.raises(ValueError, match="reward_batches must be >= 1"):
        toy_data(reward_batches=0)


def test_bad_input():
    with pytest.raises(ValueError, match="strategy must be one of"):
        toy_model("reptile")
    with pytest.raises(ValueError, match="reward_normalization must be one of"):
        toy_model(reward_normalization="rank")
    with pytest.raises(ValueError, match="sources must be distinct"):
        toy_model(sources=["echo", "echo"])
    with pytest.raises(ValueError, match=r"model.sources \['copy', 'echo'\] differ from the data module's"):
        trainer().fit(toy_model(sources=["copy", "echo"]), datamodule=toy_data())


# -- the shipped commonsense config through the CLI, on tiny files in each format -------------------------------

def _write_commonsense(root, n: int = 8) -> None:
    """``n`` records per file, in every format and at every path configs/meta_rtl/commonsense.yaml names."""
    import json

    def jsonl(rel, rows):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def labels(rel, values):
        (root / rel).write_text("".join(f"{v}\n" for v in values))

    for split in ("train_rand_split", "dev_rand_split"):
        jsonl(f"csqa/{split}.jsonl", [{"id": f"{i}", "answerKey": "AB"[i % 2], "question": {
            "stem": f"where is thing {i}?", "choices": [{"label": "A", "text": f"place {i}"},
                                                         {"label": "B", "text": f"spot {i}"}]}} for i in range(n)])
    for split in ("train", "dev"):
        jsonl(f"socialiqa/{split}.jsonl", [{"context": f"Kim did {i}.", "question": "Why?", "answerA": "a",
                                            "answerB": f"b{i}", "answerC": "c"} for i in range(n)])
        labels(f"socialiqa/{split}-labels.lst", [1 + i % 3 for i in range(n)])
        jsonl(f"winogrande/{'train_xl' if split == 'train' else 'dev'}.jsonl", [
            {"qID": f"{i}", "sentence": f"Sam gave _ gift {i}.", "option1": "Ann", "option2": "Bo",
             "answer": str(1 + i % 2)} for i in range(n)])
        jsonl(f"hellaswag/hellaswag_{'train' if split == 'train' else 'val'}.jsonl", [
            {"ind": i, "ctx": f"A man {i}", "endings": ["runs", "sits", "eats", "sleeps"], "label": i % 4}
            for i in range(n)])
    for split in ("train", "valid"):
        jsonl(f"piqa/{split}.jsonl", [{"goal": f"do {i}", "sol1": "this", "sol2": "that"} for i in range(n)])
        labels(f"piqa/{split}-labels.lst", [i % 2 for i in range(n)])
        (root / f"cosmosqa/{split}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"cosmosqa/{split}.csv").write_text("id,context,question,answer0,answer1,answer2,answer3,label\n" + "".join(
            f"c{i},ctx {i},why?,a,b,c,d,{i % 4}\n" for i in range(n)))
    for name in ("copa-dev", "copa-test"):
        (root / "copa").mkdir(exist_ok=True)
        (root / f"copa/{name}.xml").write_text("<copa-corpus>" + "".join(
            f'<item id="{i}" asks-for="cause" most-plausible-alternative="{1 + i % 2}"><p>It fell {i}.</p>'
            f"<a1>wind</a1><a2>rain</a2></item>" for i in range(n)) + "</copa-corpus>")


def test_cli_fits_and_tests_the_shipped_commonsense_config(tmp_path):
    from support import ROOT

    from zoo.cli.commands import main

    _write_commonsense(tmp_path / "data")
    main(["fit", "--config", str(ROOT / "configs/meta_rtl/commonsense.yaml"), "--config",
          str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}",
          f"--data.root={tmp_path / 'data'}", "--data.target_size=6", "--data.iterations_per_epoch=2",
          "--data.batch_size=4", "--model.meta_iterations=2", "--trainer.max_epochs=2",
          "--trainer.enable_progress_bar=false"])
    run = next((tmp_path / "csv").iterdir())
    assert next((run / "checkpoints").glob("best-*.ckpt")) and (run / "source_weights.png").is_file()
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["sources"][0] == "socialiqa" and len(saved["meta_rtl_weight_history"]) == 2


def test_embedding_cache_round_trip_and_mismatch(tmp_path):
    from zoo.nn.text_encoder import load_embedding_cache, save_embedding_cache
    from zoo.nn.text_encoder import TextEncoder

    enc = TextEncoder(freeze=True, max_length=32, share_cache=False)
    vectors = enc.pooled(["a cold day", "the opposite of hot"])
    save_embedding_cache(enc, tmp_path / "emb.pt")
    fresh = TextEncoder(freeze=True, max_length=32, share_cache=False)
    assert load_embedding_cache(fresh, tmp_path / "emb.pt") == 2
    assert torch.equal(fresh.pooled(["a cold day", "the opposite of hot"]), vectors) and fresh.cache_misses == 0
    other = TextEncoder(freeze=True, max_length=16, share_cache=False)
    with pytest.raises(ValueError, match="embeddings of another encoder"):
        load_embedding_cache(other, tmp_path / "emb.pt")
    assert load_embedding_cache(other, tmp_path / "missing.pt") == 0


# -- model selection: every strategy has the same checkpoint candidates ---------------------------------------

STRATEGY_ARMS = {"meta_rtl": {}, "frozen_policy": {"strategy": "meta_rtl", "policy_lr": 0.0}, "uniform": {},
                 "exp3": {}, "multitask": {}, "target_only": {}}


def candidate_epochs(tmp_path, arm: str) -> list[int]:
    """The epochs a ``ModelCheckpoint`` that keeps every candidate (``save_top_k=-1``) saved for one arm: 2 epochs
    of meta-transfer (10 iterations of 5 per epoch), then 2 of fine-tuning."""
    pl.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path / arm, monitor="val/acc", mode="max", save_top_k=-1,
                           filename="e{epoch}", auto_insert_metric_name=False)
    kw = {"strategy": arm, **STRATEGY_ARMS[arm]}
    trainer(tmp_path, epochs=4, callbacks=[ckpt]).fit(toy_model(**kw), datamodule=toy_data(iterations_per_epoch=5))
    return sorted(int(p.stem[1:]) for p in (tmp_path / arm).glob("e*.ckpt"))


def test_every_strategy_has_the_same_checkpoint_candidates(tmp_path):
    # Under manual optimisation Lightning's global_step counts optimiser steps and ModelCheckpoint skips an epoch
    # whose global_step has not moved since its last save; the fixed-weight strategies (uniform, exp3) step no
    # optimiser in the meta phase, so without the shared step their meta-phase epochs were never candidates.
    epochs = {arm: candidate_epochs(tmp_path, arm) for arm in STRATEGY_ARMS}
    assert epochs == {arm: [0, 1, 2, 3] for arm in STRATEGY_ARMS}


def test_reward_diagnostic_centres_on_the_sources_drawn_together_by_hand():
    from test_results import load_benchmark_module

    bench = load_benchmark_module("meta_rtl_wordnet_qa")
    # iteration 1 draws a (0.3) and b (0.1): mean 0.2; iteration 2 draws b alone (no comparison: skipped);
    # iteration 3 draws a (0.0), b (-0.3), c (0.0): mean -0.1
    centred = bench.centred_rewards([{0: 0.3, 1: 0.1}, {1: 0.5}, {0: 0.0, 1: -0.3, 2: 0.0}], ["a", "b", "c"])
    expected = {"a": [0.1, 0.1], "b": [-0.1, -0.2], "c": [0.1]}
    assert centred.keys() == expected.keys()
    assert all(centred[k] == pytest.approx(v) for k, v in expected.items())
    signal = bench.reward_signal([{"centred_rewards": {"a": [0.1, 0.3], "b": [-0.1, -0.2], "c": [0.1]}}])
    # a: mean 0.2, std 0.141421, t = 0.2 / (0.141421 / sqrt 2) = 2; c has one value: no t
    assert signal["a"]["t"] == pytest.approx(2.0) and signal["b"]["mean"] == pytest.approx(-0.15) and "c" not in signal
