"""RAML and the text encoder: hand-checked pieces, learning on real episodes, checkpoints, the CLI config."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules.text import PassageCorpus
from datamodules.text import WordNetDataModule
from fixtures.text.shared import load_encoder
from support import ROOT
from zoo.methods.protonet import ProtoNet
from zoo.training.metrics import head_collapsed, majority_class_share
from zoo.methods.raml import RAML, PrototypeCrossAttention, average_view_scores, build_views, random_passage_ids
from zoo.nn.text_encoder import TextEncoder, masked_mean

WN_FIX = str(ROOT / "tests" / "fixtures" / "text" / "wordnet")
FIX_PARAMS = dict(min_examples=4, max_category_size=10, split_fractions=[0.34, 0.33, 0.33], split_seed=1)


@pytest.fixture(scope="module")
def minilm():
    """The bundled all-MiniLM-L6-v2, frozen (nothing in it trains, so every test can share it)."""
    return load_encoder()


def wordnet_fixture(tmp_path, **kw) -> WordNetDataModule:
    args = dict(n_way=3, k_shot=1, q_query=2, train_episodes=4, val_episodes=3, test_episodes=3, seed=0)
    dm = WordNetDataModule(root=WN_FIX, cache_dir=str(tmp_path / "wn"), **FIX_PARAMS, **{**args, **kw})
    dm.setup()
    return dm


def raml(encoder, tmp_path, **kw) -> RAML:
    args = dict(n_passages=2, view_max_length=48, index_dir=str(tmp_path / "index"), faiss_threads=1,
                optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3))
    return RAML(encoder, **{**args, **kw})


# -- pure pieces, by hand ------------------------------------------------------------------------------------------

def test_masked_mean_by_hand():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert masked_mean(states, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_average_view_scores_by_hand():
    s = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 0.0]])  # 2 queries x 2 views, query-major
    assert average_view_scores(s, 2, 2).tolist() == [[2.0, 1.0], [1.0, 2.0]]
    with pytest.raises(ValueError, match="rows for 3 queries"):
        average_view_scores(s, 3, 2)


def test_build_views_format_and_order():
    corpus = PassageCorpus(["a", "b"], ["Beagle", "Guitar"], ["a hound", "six strings"])
    views = build_views(["q1", "q2"], [[1, 0], [0, 0]], corpus, "{query} title: {title} context: {text}")
    assert views == ["q1 title: Guitar context: six strings", "q1 title: Beagle context: a hound",
                     "q2 title: Beagle context: a hound", "q2 title: Beagle context: a hound"]
    assert build_views(["q"], None, None, "unused") == ["q"]


def test_cross_attention_ignores_padding_and_is_residual():
    torch.manual_seed(0)
    att = PrototypeCrossAttention(8, 6, 2, dropout=0.0).eval()
    protos, states = torch.randn(3, 4, 8), torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = att(protos, states, mask)
    noisy = states.clone()
    noisy[~mask] = 1e3  # whatever sits in padded positions must not matter
    assert torch.allclose(out, att(protos, noisy, mask), atol=1e-5)
    # with attention output zeroed, u = LayerNorm(z): the residual path alone
    torch.nn.init.zeros_(att.dense.weight)
    torch.nn.init.zeros_(att.dense.bias)
    assert torch.allclose(att(protos, states, mask), F.layer_norm(protos, (8,), eps=1e-12), atol=1e-5)


def test_cross_attention_starts_from_encoder_layer_zero(minilm, tmp_path):
    model = raml(minilm, tmp_path)
    layer0 = minilm.model.encoder.layer[0].attention
    assert model.initialised_from_encoder
    assert torch.equal(model.cross.key.weight, layer0.self.key.weight)
    assert torch.equal(model.cross.norm.weight, layer0.output.LayerNorm.weight)
    assert model.cross.key.weight.data_ptr() != layer0.self.key.weight.data_ptr()  # a copy, not shared


# -- the text encoder ----------------------------------------------------------------------------------------------

def test_frozen_encoder_first_called_inside_torch_func_grad_caches_plain_tensors(minilm):
    """An inner loop (Meta-RTL's head adaptation) may be the first to encode a text: the cache must not keep the
    transform's wrapper, or every later reader of the process-wide cache fails after the transform has ended."""
    from torch._C._functorch import is_functorch_wrapped_tensor

    texts = ["a text first encoded inside torch.func.grad", "and its neighbour in the same batch"]
    w = torch.ones(minilm.out_dim)
    torch.func.grad(lambda w: (minilm(texts) @ w).sum())(w)
    states, _ = torch.func.grad_and_value(lambda w: (minilm.token_states(texts)[0].sum(1) @ w).sum())(w)
    assert not any(is_functorch_wrapped_tensor(minilm._cache[t]) for t in texts)
    assert not any(is_functorch_wrapped_tensor(v) for v in minilm._token_cache.values())
    assert torch.allclose(minilm(texts), minilm.encode(texts, normalize=False), atol=1e-5)


def test_frozen_encoder_caches_and_matches_fresh_encoding(minilm):
    texts = ["a breed of small hound", "a stringed instrument", "a breed of small hound"]
    hits = minilm.cache_hits
    z = minilm(texts)
    assert z.shape == (3, 384) and torch.equal(z[0], z[2])
    assert minilm.cache_hits - hits >= 1
    again = minilm(texts[:2])
    assert torch.equal(again, z[:2])
    fresh = minilm.encode(texts[:2], normalize=False)
    assert torch.allclose(fresh, z[:2], atol=1e-5)
    states, mask = minilm.token_states(texts[:2])
    states2, mask2 = minilm.token_states(texts[:2])
    assert torch.equal(states, states2) and torch.equal(mask, mask2)
    assert torch.allclose(masked_mean(states, mask), z[:2], atol=1e-5)
    with pytest.raises(TypeError, match="list of strings"):
        minilm("one string")


def test_frozen_encoder_checkpoint_holds_only_trainable_parts(minilm):
    enc = load_encoder(freeze=True, max_length=48, projection_dim=384)
    state = enc.state_dict()
    assert set(state) == {"frozen_sha256", "projection.weight", "projection.bias"}
    assert torch.equal(enc.projection.weight, torch.eye(384))  # identity start: the pretrained metric
    twin = copy.deepcopy(enc)
    twin.load_state_dict(state)  # the frozen weights come from model_dir
    bad = dict(state)
    bad["frozen_sha256"] = torch.ones(32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="trained on a frozen encoder with weights sha256"):
        twin.load_state_dict(bad)


def test_encoder_options_are_checked():
    with pytest.raises(ValueError, match="pooling must be 'mean' or 'cls'"):
        TextEncoder(pooling="max")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TextEncoder(model_dir=str(ROOT))


# -- learning --------------------------------------------------------------------------------------------------------

def _losses(model, episode, steps, lr=1e-3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    out = []
    for _ in range(steps):
        loss = F.cross_entropy(model(episode), episode.query_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


@pytest.mark.parametrize("fusion, view_encoding", [("multiview", "joint"), ("fid", "joint"),
                                                   ("multiview", "separate")])
def test_published_raml_loss_falls(minilm, tmp_path, fusion, view_encoding):
    torch.manual_seed(0)
    dm = wordnet_fixture(tmp_path)
    model = raml(minilm, tmp_path, head="published", fusion=fusion, view_encoding=view_encoding)
    model.attach_corpus(dm.passage_corpus())
    episode = dm.dataset("train")[(0, 0)]
    ids = model.retrieve(list(episode.query_x))
    searched, hits = model.retriever.stats["searched"], model.retriever.stats["cache_hits"]
    losses = _losses(model, episode, 6)
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.retriever.stats["searched"] == searched  # retrieved once per query, then served from the cache
    assert model.retriever.stats["cache_hits"] == hits + 6 * len(episode.query_x)
    assert ids.shape == (6, 2)
    corpus_words = {model.retriever.corpus.texts[int(j)] for j in ids.flatten()}
    assert not corpus_words & set(episode.query_x)


def test_metric_head_loss_falls(tmp_path):
    torch.manual_seed(0)
    dm = wordnet_fixture(tmp_path)
    model = raml(load_encoder(freeze=True, max_length=48, projection_dim=384), tmp_path)
    model.attach_corpus(dm.passage_corpus())
    episode = dm.dataset("train")[(0, 0)]
    before = copy.deepcopy(model.encoder.projection.state_dict())
    losses = _losses(model, episode, 8, lr=1e-2)
    model.encoder.projection.load_state_dict(before)  # the shared encoder goes back as it was
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.score.weight.abs().sum() > 0 and model.passage_weight.item() != 0.5  # the fusion and beta trained


def test_metric_head_starts_as_cosine_protonet_on_the_enriched_query(minilm, tmp_path):
    """At initialisation the fusion score is exactly 0: logits = 10 cos(z_c, n(q) + 0.5 mean_p n(p)), by hand, with
    z_c the support embedding (1-shot) or, with enrich_support, the support enriched the same way."""
    dm = wordnet_fixture(tmp_path)
    episode = dm.dataset("val")[(0, 0)]
    support, query = minilm(list(episode.support_x)), minilm(list(episode.query_x))
    bare = raml(minilm, tmp_path, n_passages=0).eval()  # 1-shot: the prototypes are the support embeddings
    assert torch.allclose(bare(episode), 10 * F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).T, atol=1e-4)
    def enrich(model, texts, z):
        ids = model.retrieve(list(texts))
        corpus = model.retriever.corpus
        passages = minilm.encode([corpus.passage(int(j)) for j in ids.flatten()], normalize=True).view(*ids.shape, -1)
        return F.normalize(z, dim=-1) + 0.5 * F.normalize(passages, dim=-1).mean(1)

    for enrich_support in (False, True):
        model = raml(minilm, tmp_path, enrich_support=enrich_support).eval()
        model.attach_corpus(dm.passage_corpus())
        protos = enrich(model, episode.support_x, support) if enrich_support else support
        expected = 10 * F.normalize(enrich(model, episode.query_x, query), dim=-1) @ F.normalize(protos, dim=-1).T
        assert torch.allclose(model(episode), expected, atol=1e-4), enrich_support
    with pytest.raises(ValueError, match="head='published' only"):
        raml(minilm, tmp_path, proto_logit_weight=1.0)
    with pytest.raises(ValueError, match="head must be one of"):
        raml(minilm, tmp_path, head="fusion")


def test_random_passages_are_fixed_per_text_and_not_the_retrieved_ones(minilm, tmp_path):
    ids = random_passage_ids(["a dog", "a cat", "a dog"], 4, 1000, seed=0)
    assert ids.shape == (3, 4) and torch.equal(ids[0], ids[2]) and not torch.equal(ids[0], ids[1])
    assert ids.min() >= 0 and ids.max() < 1000
    assert torch.equal(random_passage_ids(["a dog"], 4, 1000, seed=0)[0], ids[0])  # same in every call
    assert not torch.equal(random_passage_ids(["a dog"], 4, 1000, seed=1)[0], ids[0])
    dm = wordnet_fixture(tmp_path)
    episode = dm.dataset("val")[(0, 0)]
    model = raml(minilm, tmp_path, passage_source="random")
    model.attach_corpus(dm.passage_corpus())
    drawn = model.retrieve(list(episode.query_x))
    expected = random_passage_ids(list(episode.query_x), 2, len(model.retriever.corpus))
    assert torch.equal(torch.as_tensor(drawn), expected)
    assert model(episode).shape == (6, 3)


def test_collapse_check_flags_the_published_head_and_passes_a_trained_metric_head(tmp_path):
    """The published score starts with no query-dependent signal: at initialisation it sends (nearly) every query
    of an episode to the same class, which the per-episode majority-class-share check catches; the metric head,
    trained a few steps, passes it."""
    torch.manual_seed(0)
    dm = wordnet_fixture(tmp_path, val_episodes=12)
    encoder = load_encoder(freeze=True, max_length=48, projection_dim=384)

    def shares(model):
        model.eval()
        with torch.no_grad():
            return [float(majority_class_share(model(e).argmax(-1), e.n_way))
                    for e in (dm.dataset("val")[(0, i)] for i in range(12))]

    published = raml(encoder, tmp_path, head="published", n_passages=0)
    assert head_collapsed(shares(published), 3), shares(published)
    metric = raml(encoder, tmp_path, n_passages=0)
    _losses(metric, dm.dataset("train")[(0, 0)], 5, lr=1e-2)
    assert not head_collapsed(shares(metric), 3), shares(metric)


def test_raml_without_retrieval_is_the_same_architecture(minilm, tmp_path):
    dm = wordnet_fixture(tmp_path)
    model = raml(minilm, tmp_path, n_passages=0)
    episode = dm.dataset("train")[(0, 1)]
    assert model(episode).shape == (6, 3) and model.retriever is None


def test_proto_logit_residual_starts_exactly_at_protonet(minilm, tmp_path):
    dm = wordnet_fixture(tmp_path)
    model = raml(minilm, tmp_path, head="published", n_passages=0, proto_logit_weight=1.0).eval()
    episode = dm.dataset("val")[(0, 0)]
    support, query = minilm(list(episode.support_x)), minilm(list(episode.query_x))
    expected = -torch.cdist(query, support) ** 2  # 1-shot: the prototypes are the support embeddings
    assert torch.allclose(model(episode), expected, atol=1e-3)
    with pytest.raises(ValueError, match="proto_distance"):
        raml(minilm, tmp_path, head="published", proto_distance="manhattan")


def test_protonet_text_loss_falls(tmp_path):
    torch.manual_seed(0)
    dm = wordnet_fixture(tmp_path)
    model = ProtoNet(load_encoder(freeze=True, max_length=48, projection_dim=384), distance="euclidean")
    episode = dm.dataset("train")[(0, 0)]
    before = copy.deepcopy(model.backbone.projection.state_dict())
    with torch.no_grad():  # start from the identity whatever other tests did to the shared encoder
        torch.nn.init.eye_(model.backbone.projection.weight)
        model.backbone.projection.bias.zero_()
    losses = _losses(model, episode, 6, lr=1e-3)
    model.backbone.projection.load_state_dict(before)  # the shared encoder goes back as it was
    assert losses[-1] < 0.7 * losses[0], losses


def test_finetuned_encoder_gets_gradients(tmp_path):
    dm = wordnet_fixture(tmp_path)
    enc = TextEncoder(freeze=False, max_length=32)
    model = raml(enc, tmp_path, n_passages=0)
    episode = dm.dataset("train")[(0, 2)]
    F.cross_entropy(model(episode), episode.query_y).backward()
    grads = [p.grad for p in enc.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert len(model.configure_optimizers().param_groups) == 2  # encoder group and fusion group (lr x 2)


# -- fit -> checkpoint -> test, and the CLI config ---------------------------------------------------------------------

def test_fit_checkpoint_test_round_trip(minilm, tmp_path):
    pl.seed_everything(0)
    dm = wordnet_fixture(tmp_path)
    model = raml(minilm, tmp_path)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/acc", mode="max", save_last=True)
    trainer = pl.Trainer(max_epochs=2, logger=False, callbacks=[ckpt], enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    first = trainer.test(model, datamodule=dm, ckpt_path=ckpt.best_model_path, verbose=False)[0]
    saved = torch.load(ckpt.best_model_path, weights_only=True)
    assert not any(k.startswith("encoder.model.") for k in saved["state_dict"])  # frozen weights not stored
    assert saved["hyper_parameters"]["n_passages"] == 2
    fresh = raml(minilm, tmp_path)
    again = pl.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu").test(
        fresh, datamodule=wordnet_fixture(tmp_path), ckpt_path=ckpt.best_model_path, verbose=False)[0]
    assert again["test/acc"] == pytest.approx(first["test/acc"]) and "test/acc_ci95" in again
    assert torch.equal(fresh.cross.query.weight, model.cross.query.weight)


def test_registry_export_holds_trainable_parts_only(minilm, tmp_path):
    from safetensors.torch import load_file

    from zoo.hub.pretrained import export_weights

    model = raml(minilm, tmp_path)
    torch.nn.init.normal_(model.score.weight)
    export_weights(model, tmp_path / "raml.safetensors")
    state = load_file(str(tmp_path / "raml.safetensors"))
    assert not any(k.startswith("encoder.model.") for k in state) and "encoder.frozen_sha256" in state
    assert sum(v.numel() for k, v in state.items() if k != "encoder.frozen_sha256") == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    fresh = raml(minilm, tmp_path)
    missing, unexpected = fresh.load_state_dict(state, strict=False)  # what zoo.load_pretrained does
    assert not missing and not unexpected and torch.equal(fresh.score.weight, model.score.weight)


def test_cli_fits_and_tests_the_shipped_wordnet_config(tmp_path):
    from zoo.cli.commands import main

    main(["fit", "--config", str(ROOT / "configs/raml/wordnet.yaml"), "--config", str(ROOT / "configs/logger/csv.yaml"),
          f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.max_epochs=1",
          "--trainer.enable_progress_bar=false", f"--data.root={WN_FIX}", f"--data.cache_dir={tmp_path}/wn",
          "--data.min_examples=4", "--data.max_category_size=10", "--data.split_fractions=[0.34,0.33,0.33]",
          "--data.split_seed=1", "--data.n_way=3", "--data.k_shot=1", "--data.q_query=2", "--data.train_episodes=2",
          "--data.val_episodes=2", "--data.test_episodes=2", f"--model.index_dir={tmp_path}/index",
          "--model.encoder.init_args.max_length=32", "--model.view_max_length=48", "--model.n_passages=2"])
    run = next((tmp_path / "csv").iterdir())
    assert next((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "test_episodes.csv").is_file()


# -- the benchmark's claims, on made-up runs (the real run embeds 36k passages: an hour of CPU) ---------------------

def _benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("raml_wordnet", ROOT / "benchmarks" / "raml_wordnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_claims_pair_seed_averaged_episodes_by_hand():
    bench = _benchmark_module()

    def row(method, seed, acc, share):
        return {"method": method, "shot": 1, "seed": seed, "per_episode": acc, "per_episode_majority_share": share,
                "test_acc": sum(acc) / len(acc)}

    rows = [row("raml", 0, [0.6, 0.8, 1.0], [0.2, 0.2, 0.2]), row("raml", 1, [0.8, 0.8, 1.0], [0.2, 0.4, 0.2]),
            row("protonet-text", 0, [0.4, 0.8, 0.8], [0.2, 0.2, 0.2]),
            row("protonet-text", 1, [0.6, 0.6, 0.8], [0.2, 0.2, 0.2]),
            row("raml-no-passages", 0, [0.2, 0.2, 0.2], [1.0, 1.0, 0.8]),
            row("raml-no-passages", 1, [0.2, 0.2, 0.4], [1.0, 0.8, 0.8])]
    claims = {c["id"]: c for c in bench.claims_of(rows)}
    # seed-averaged per episode: raml 0.7, 0.8, 1.0; protonet-text 0.5, 0.7, 0.8 -> differences 0.2, 0.1, 0.2
    c = claims["raml-vs-protonet-text-5w1s"]
    assert c["diff"] == pytest.approx(0.5 / 3) and c["n"] == 3 and c["holds"]
    assert "RAML beats ProtoNet-text (cosine), WordNet 5-way 1-shot" == c["statement"]
    assert "raml-retrieval-vs-none-5w1s" in claims and "raml-retrieval-vs-random-5w1s" not in claims  # not run
    summary = bench.summarize(rows)
    assert summary["5w1s/raml-no-passages"]["collapsed"] and not summary["5w1s/raml"]["collapsed"]
    assert summary["5w1s/raml"]["majority_share"] == pytest.approx(1.4 / 6)


def _knowledge_benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("raml_wordnet_knowledge",
                                                  ROOT / "benchmarks" / "raml_wordnet_knowledge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_knowledge_benchmark_diagnostics_by_hand():
    """The gold-passage hit rate counts the gold id at rank 1 / anywhere in the top P; the gap closed is the share
    of ceiling minus floor that a method recovers, undefined without a gap."""
    bench = _knowledge_benchmark_module()
    hits = bench.gold_hit_rate([[4, 1, 2], [0, 7, 9], [3, 3, 3], [5, 6, 8]], [4, 9, 2, 5])
    assert hits == {"top1": 0.5, "topP": 0.75, "texts": 4, "P": 3}
    with pytest.raises(ValueError, match="2 retrieved rows for 1 gold"):
        bench.gold_hit_rate([[1], [2]], [1])
    assert bench.gap_closed(0.7, 0.6, 0.8) == pytest.approx(0.5)
    assert bench.gap_closed(0.55, 0.6, 0.8) == pytest.approx(-0.25)  # below the floor: negative, not clipped
    assert bench.gap_closed(0.7, 0.8, 0.8) is None


def test_knowledge_benchmark_claims_pair_methods_seed_by_seed_by_hand():
    """Claims pair each seed's runs over the shared test episodes and take a t-interval over seeds; a seed that one
    method lacks is left out, and fewer than 5 seeds carry the reason."""
    bench = _knowledge_benchmark_module()

    def row(method, seed, acc):
        return {"method": method, "shot": 1, "seed": seed, "per_episode": acc, "per_episode_majority_share": [0.2] * 2,
                "test_acc": sum(acc) / 2}

    gains = [0.1, 0.2, 0.3, 0.2, 0.2]  # per-seed mean differences: mean 0.2, t-half-width 0.087798 (test_results)
    rows = [row("raml", s, [0.5 + g, 0.5 + g]) for s, g in enumerate(gains)]
    rows += [row("raml-no-passages", s, [0.5, 0.5]) for s in range(6)]  # seed 5: no raml run to pair with
    rows += [row("protonet-text", s, [0.6, 0.4]) for s in range(3)]
    claims = {c["id"]: c for c in bench.claims_of(rows, seeds_reason="budget")}
    c = claims["raml-retrieval-vs-none-wordnet-knowledge-5w1s"]
    assert (c["seeds"], c["items"], c["unit"]) == (5, 10, "seeds") and "seeds_reason" not in c
    assert c["diff"] == pytest.approx(0.2) and c["ci95"] == pytest.approx(0.087798, abs=1e-6) and c["holds"]
    short = claims["raml-vs-protonet-text-wordnet-knowledge-5w1s"]  # seeds 0-2 only
    assert short["seeds"] == 3 and short["seeds_reason"] == "budget"
    assert short["diff"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert "raml-vs-retrieval-concat-wordnet-knowledge-5w1s" not in claims  # its baseline did not run
    summary = bench.summarize(rows)
    rows += [row("raml-gold-passage", s, [0.9, 0.9]) for s in range(5)]
    b = bench.bounds(bench.summarize(rows))["5w1s"]
    assert (b["floor"], b["ceiling"]) == (pytest.approx(0.5), pytest.approx(0.9))
    assert b["gap_closed"]["raml"] == pytest.approx((summary["5w1s/raml"]["mean"] - 0.5) / 0.4)


def test_knowledge_benchmark_runs_every_method_per_seed_and_merges_shot_settings(tmp_path, monkeypatch):
    """main(): every method for each seed on the same shot setting, 5 seeds give protocol claims without a reason;
    a later command for another shot setting keeps the first one's runs and both commands; --max-minutes stops
    between seeds and the claims then carry the reason; a different budget is refused."""
    bench = _knowledge_benchmark_module()
    calls = []

    def fake_run(method, shot, seed, episodes, epochs, save_dir, data=None, methods=None):
        assert data == ["--data.max_per_class=40"]  # the default cap reaches every run
        calls.append((method, shot, seed))
        acc = [0.9, 0.8] if method == "raml-gold-passage" else [0.5 + 0.01 * (method == "raml") + 0.01 * seed] * 2
        return {"method": method, "shot": shot, "seed": seed, "test_acc": sum(acc) / 2, "test_ci95": 0.0,
                "train_seconds": 1.0, "per_episode": acc, "per_episode_majority_share": [0.2, 0.2],
                "selected_epoch": 0, "_cli": None}

    written = {}

    def fake_write(name, payload):
        (tmp_path / f"{name}.json").write_text(__import__("json").dumps(payload))
        written[name] = payload
        return tmp_path / f"{name}.json"

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "write_results", fake_write)
    monkeypatch.setattr(bench, "prepare_index", lambda cap: (None, None, {"passages": 10}))
    monkeypatch.setattr(bench, "retrieve_all", lambda dm, r: {"top1": 0.5, "topP": 0.75, "texts": 4, "P": 3})
    monkeypatch.setattr(bench, "encode_all_texts", lambda cap, text: {"texts": 4, "seconds": 0.0})
    bench.main(["--shots", "1"])
    assert calls == [(m, 1, s) for s in range(5) for m in bench.METHODS]
    first = written["raml_wordnet_knowledge"]
    claims = {c["id"]: c for c in first["claims"]}
    c = claims["raml-retrieval-vs-none-wordnet-knowledge-5w1s"]
    assert c["seeds"] == 5 and "seeds_reason" not in c and c["diff"] == pytest.approx(0.01)
    assert first["bounds"]["5w1s"]["ceiling"] == pytest.approx(0.85)
    monkeypatch.setattr(bench.time, "perf_counter", iter(range(0, 10**6, 300)).__next__)  # 5 minutes per call
    bench.main(["--shots", "5", "--max-minutes", "22"])  # 3 calls before the seeds: seeds 0 (15 min) and 1 (20)
    second = written["raml_wordnet_knowledge"]
    assert second["setting"]["seeds_run"] == {1: [0, 1, 2, 3, 4], 5: [0, 1]}
    assert second["commands"] == ["python benchmarks/raml_wordnet_knowledge.py --shots 1",
                                  "python benchmarks/raml_wordnet_knowledge.py --shots 5 --max-minutes 22"]
    assert second["stopped"] and "5w5s seed 2" in second["stopped"][0]
    short = {c["id"]: c for c in second["claims"]}["raml-retrieval-vs-none-wordnet-knowledge-5w5s"]
    assert short["seeds"] == 2 and "ran out" in short["seeds_reason"]
    assert {c["id"]: c for c in second["claims"]}["raml-retrieval-vs-none-wordnet-knowledge-5w1s"]["seeds"] == 5
    calls.clear()
    bench.main(["--shots", "5", "--seeds", "2", "3", "4"])  # the seeds the budget stopped, added by a later command
    third = written["raml_wordnet_knowledge"]
    assert calls == [(m, 5, s) for s in (2, 3, 4) for m in bench.METHODS]
    assert third["setting"]["seeds_run"] == {1: [0, 1, 2, 3, 4], 5: [0, 1, 2, 3, 4]}
    assert not third["stopped"]  # the earlier stop of 5w5s no longer describes the file
    full = {c["id"]: c for c in third["claims"]}["raml-retrieval-vs-none-wordnet-knowledge-5w5s"]
    assert full["seeds"] == 5 and "seeds_reason" not in full
    with pytest.raises(SystemExit):
        bench.main(["--shots", "5", "--epochs", "3"])


# -- the knowledge-gap benchmark's methods and bounds, and the top-layer fine-tuning switch (issue 21) -------------

def knowledge_fixture(tmp_path, **kw) -> WordNetDataModule:
    return wordnet_fixture(tmp_path, text="lemma", **kw)


def test_gold_passages_are_each_texts_own_gloss_and_the_averaged_baseline_is_the_bare_metric(minilm, tmp_path):
    """passage_source='gold' (the ceiling) reads each text's own synset passage P times; fusion='none' (ProtoNet-text
    over the query + the mean of its passages) is exactly 10 cos(n(q) + 0.5 mean n(p), z_c) even after the fusion
    block has trained, since it has none."""
    dm = knowledge_fixture(tmp_path)
    episode = dm.dataset("val")[(0, 0)]
    corpus, gold = dm.passage_corpus(), dm.gold_passages()
    model = raml(minilm, tmp_path, passage_source="gold", enrich_support=False).eval()
    model.attach_corpus(corpus)
    model.attach_gold_passages(gold)
    ids = torch.as_tensor(model.retrieve(list(episode.query_x)))
    assert ids.shape == (6, 2) and all(corpus.passage(int(row[0])).startswith(q + ": ") and row[0] == row[1]
                                       for q, row in zip(episode.query_x, ids))
    with pytest.raises(KeyError, match="no gold passage for 1 text"):
        model.retrieve(["not an example"])
    baseline = raml(minilm, tmp_path, fusion="none", enrich_support=False)
    baseline.attach_corpus(corpus)
    with torch.no_grad():
        baseline.score.weight.fill_(1.0)  # a trained fusion score would show here; 'none' has no fusion score
    q = F.normalize(minilm(list(episode.query_x)), dim=-1)
    p = minilm.encode([corpus.passage(int(j)) for j in baseline.retrieve(list(episode.query_x)).flatten()],
                      normalize=True).view(6, 2, -1)
    expected = 10 * F.normalize(q + 0.5 * p.mean(1), dim=-1) @ F.normalize(minilm(list(episode.support_x)), dim=-1).T
    assert torch.allclose(baseline.eval()(episode), expected, atol=1e-4)
    with pytest.raises(ValueError, match="fusion='none' leaves the published head no score"):
        raml(minilm, tmp_path, fusion="none", head="published")
    no_gold = raml(minilm, tmp_path, passage_source="gold")
    no_gold.attach_corpus(corpus)
    with pytest.raises(ValueError, match="needs a datamodule with gold_passages"):
        no_gold.setup("fit")


def test_cli_fits_the_shipped_knowledge_gap_config_with_its_bounds(tmp_path):
    """configs/raml/wordnet_knowledge.yaml trains and tests from a fresh data directory (it builds its benchmark
    and index offline), and so do its floor (no passages) and ceiling (gold passages)."""
    from zoo.cli.commands import main

    for name, extra in (("raml", []), ("floor", ["--model.n_passages=0"]), ("ceiling", ["--model.passage_source=gold"])):
        main(["fit", "--config", str(ROOT / "configs/raml/wordnet_knowledge.yaml"), "--config",
              str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path / name}",
              "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", f"--data.root={WN_FIX}",
              f"--data.cache_dir={tmp_path}/wn", "--data.min_examples=4", "--data.max_category_size=10",
              "--data.split_fractions=[0.34,0.33,0.33]", "--data.split_seed=1", "--data.n_way=3", "--data.k_shot=1",
              "--data.q_query=2", "--data.train_episodes=2", "--data.val_episodes=2", "--data.test_episodes=2",
              f"--model.index_dir={tmp_path}/index", "--model.encoder.init_args.max_length=32",
              "--model.view_max_length=48", "--model.n_passages=2", *extra])
        run = next((tmp_path / name / "csv").iterdir())
        assert next((run / "checkpoints").glob("best-*.ckpt")) and (run / "test_episodes.csv").is_file(), name


def test_trainable_layers_train_only_the_top_layers_and_round_trip_through_a_checkpoint(tmp_path):
    enc = TextEncoder(freeze=False, max_length=32, trainable_layers=2)
    layers = enc.model.encoder.layer
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.encoder.layer.4.", "model.encoder.layer.5.")) for n in trainable)
    assert all(p.requires_grad for layer in layers[4:] for p in layer.parameters())
    before = copy.deepcopy(enc.state_dict())
    opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-3)
    enc.train()
    loss = enc(["a small hound", "a stringed instrument"]).pow(2).sum()
    loss.backward()
    opt.step()
    after = enc.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("model.encoder.layer.4.", "model.encoder.layer.5.")) for k in changed)
    assert any(k.startswith("model.encoder.layer.4.") for k in changed)  # both top layers learned
    torch.save(after, tmp_path / "enc.pt")
    fresh = TextEncoder(freeze=False, max_length=32, trainable_layers=2)
    fresh.load_state_dict(torch.load(tmp_path / "enc.pt", weights_only=True))
    assert all(torch.equal(v, after[k]) for k, v in fresh.state_dict().items())
    enc.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(["a small hound"]), enc(["a small hound"]), atol=1e-6)
    assert {n for n, p in fresh.named_parameters() if p.requires_grad} == trainable
    with pytest.raises(ValueError, match="needs freeze=False"):
        TextEncoder(freeze=True, trainable_layers=1)
    with pytest.raises(ValueError, match="between 0 and the model's 6 layers"):
        TextEncoder(freeze=False, trainable_layers=7)
    none = TextEncoder(freeze=False, trainable_layers=0)
    assert not any(p.requires_grad for p in none.parameters())
