"""Meta-DMoE: masking, the aggregator, the second-order meta-gradient, what adaptation may change, learning, and
the four-stage fit -> stage checkpoints -> resume -> test round trip on a toy domain dataset."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from datamodules.domains import DomainDataModule, DomainSet
from datamodules.episodes import TensorSource
from zoo import Conv4
from zoo.methods.meta_dmoe import MetaDMoE, PreNormAggregator, distillation_loss, mask_experts
from zoo.training.metrics import macro_f1


def toy_domains(domains=8, per_class=6, classes=3, size=16, seed=0) -> DomainSet:
    """Class c is a bright square at a class-specific place; domain d shifts brightness and adds noise."""
    g = torch.Generator().manual_seed(seed)
    xs, ys, ds = [], [], []
    for d in range(domains):
        for c in range(classes):
            for _ in range(per_class):
                x = torch.zeros(1, size, size)
                x[:, 2 + 4 * c: 6 + 4 * c, 4:12] = 1.0
                xs.append(x * (0.5 + 0.1 * d) + 0.05 * d + 0.1 * torch.randn(1, size, size, generator=g))
                ys.append(c)
                ds.append(d)
    order = torch.randperm(len(ys), generator=g)  # a domain's first evaluation batch then holds several classes
    x, y, dom = torch.stack(xs)[order], torch.tensor(ys)[order], torch.tensor(ds)[order]
    split = {"train": list(range(domains - 2)), "val": [domains - 2], "test": [domains - 1]}
    return DomainSet(TensorSource(x, y), dom, [f"d{i}" for i in range(domains)], {i: str(i) for i in range(classes)},
                     split)


class ToyDomains(DomainDataModule):
    def build_domains(self) -> DomainSet:
        return toy_domains()


def small(**kw) -> MetaDMoE:
    torch.manual_seed(0)
    args = dict(num_classes=3, num_experts=2, aggregator_heads=2, inner_lr=0.5, stage_epochs=[1, 1, 1, 1])
    args.update(kw)
    return MetaDMoE(Conv4(hidden=8, pooling="avg", image_size=16), **args)


def toy_batch(groups=2, support=6, query=6, seed=0) -> dict[str, torch.Tensor]:
    dm = ToyDomains(support_size=support, query_size=query, groups_per_batch=groups, super_domains=2, seed=seed)
    dm.setup()
    return next(iter(dm.loader("train")))


# -- pure pieces ----------------------------------------------------------------------------------------------------
def test_mask_removes_exactly_the_in_domain_expert():
    tokens = torch.arange(3).float().view(1, 3, 1).expand(2, 3, 2)  # token i holds value i
    removed = mask_experts(tokens, torch.tensor([1, 2]), "remove")
    assert removed.shape == (2, 2, 2)
    assert removed[0, :, 0].tolist() == [0.0, 2.0] and removed[1, :, 0].tolist() == [0.0, 1.0]
    zeroed = mask_experts(tokens + 1, torch.tensor([0, 2]), "zero")
    assert zeroed[0, :, 0].tolist() == [0.0, 2.0, 3.0] and zeroed[1, :, 0].tolist() == [1.0, 2.0, 0.0]
    assert torch.equal(mask_experts(tokens, torch.tensor([0, 0]), "none"), tokens)
    with pytest.raises(ValueError, match="expert indices must be in 0..2"):
        mask_experts(tokens, torch.tensor([0, 3]))


def test_distillation_loss_and_macro_f1_by_hand():
    # (1 - 0)^2 + (2 - 0)^2 + (0 - 0)^2 + (3 - 1)^2 = 1 + 4 + 0 + 4 = 9, over 4 entries
    assert float(distillation_loss(torch.tensor([[1.0, 2.0], [0.0, 3.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]]))) \
        == pytest.approx(9 / 4)
    # class 0: TP 1, FP 1, FN 1 -> 2/4; class 1: TP 1, FP 0, FN 1 -> 2/3; class 2: TP 0, FP 1, FN 0 -> 0
    assert macro_f1(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 3) == pytest.approx((0.5 + 2 / 3 + 0) / 3)


def test_aggregator_is_permutation_invariant_and_takes_any_token_count():
    torch.manual_seed(0)
    agg = PreNormAggregator(8, num_classes=3, heads=2).eval()
    tokens = torch.randn(5, 4, 8)
    out = agg.features(tokens)
    assert torch.allclose(agg.features(tokens[:, [2, 0, 3, 1]]), out, atol=1e-6)
    assert agg.features(tokens[:, :3]).shape == (5, 8)  # N - 1 tokens after masking


# -- meta-distillation ----------------------------------------------------------------------------------------------
def test_the_second_order_meta_gradient_reaches_the_aggregator_and_a_first_order_one_does_not():
    batch = toy_batch()
    model = small().eval()
    loss, _ = model.meta_loss(batch)
    loss.backward()
    grads = [p.grad for p in model.aggregator.blocks.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert model.student.head.weight.grad is not None and model.experts[0].backbone.encoder[0][0].weight.grad is None
    fo = small(first_order=True).eval()
    fo.meta_loss(batch)[0].backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in fo.aggregator.parameters())


def test_adaptation_changes_only_the_feature_extractor_and_no_stored_weight():
    model = small().eval()
    x = toy_batch()["support_x"][0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = dict(model.student.backbone.named_parameters())
    fast = model.adapted_params(x, model.teacher(x), first_order=True)
    moved = {n for n in fast if not torch.equal(fast[n], params[n])}
    assert moved and moved == set(params)  # every theta_e tensor moves, and only those exist in the result
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    last = small(adapt=["encoder.3."]).eval()
    fast = last.adapted_params(x, last.teacher(x), first_order=True)
    own = dict(last.student.backbone.named_parameters())
    assert {n for n in fast if not torch.equal(fast[n], own[n])} == {n for n in own if n.startswith("encoder.3.")}


def test_meta_training_lowers_the_query_loss():
    batch = toy_batch(groups=2, support=6, query=6)
    model = small(inner_lr=0.1).eval()
    opt = torch.optim.Adam(list(model.student.parameters()) + list(model.aggregator.parameters()), 1e-2)
    losses = []
    for _ in range(10):
        loss, _ = model.meta_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


# -- the four stages through Lightning --------------------------------------------------------------------------------
def trainer(tmp_path, epochs=4, **kw) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path), **kw)


def data(**kw) -> ToyDomains:
    args = dict(support_size=6, query_size=6, groups_per_batch=2, train_batches=3, super_domains=2, seed=0)
    args.update(kw)
    return ToyDomains(**args)


def test_fit_writes_stage_checkpoints_resumes_at_the_next_stage_and_tests_every_method(tmp_path):
    pl.seed_everything(0)
    methods = ["meta_dmoe", "erm", "erm_bn", "experts_avg", "aggregator_head"]
    model = small(stage_dir=str(tmp_path / "stages"), eval_methods=methods)
    trainer(tmp_path).fit(model, datamodule=data())
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == [f"stage-{s}.ckpt" for s in "ABCD"]
    assert int(model.stages_done) == 4

    # resume from the end of stage C: only stage D runs, from C's weights
    pl.seed_everything(0)
    resumed = small(stage_dir=str(tmp_path / "again"), eval_methods=methods, mask="none")
    t = trainer(tmp_path)
    t.fit(resumed, datamodule=data(), ckpt_path=str(tmp_path / "stages" / "stage-C.ckpt"))
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["stage-D.ckpt"]
    assert t.current_epoch == 4 and int(resumed.stages_done) == 4
    c = torch.load(tmp_path / "stages" / "stage-C.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(resumed.experts[0].head.weight, c["experts.0.head.weight"])  # stage A untouched by D

    loaded = MetaDMoE.load_from_checkpoint(tmp_path / "stages" / "stage-D.ckpt", weights_only=True,
                                           backbone=Conv4(hidden=8, pooling="avg", image_size=16))
    assert int(loaded.stages_done) == 4 and loaded.eval_methods == methods
    metrics = trainer(tmp_path).test(loaded, datamodule=data(eval_batch_size=6))[0]
    for m in methods[1:]:
        assert 0 <= metrics[f"test/acc_{m}"] <= 1
    assert metrics["test/domains"] == 1 and 0 <= metrics["test/acc"] <= 1
    assert loaded.records["test"][0]["adapt_seconds"] > 0


def test_bad_configurations_name_what_to_change(tmp_path):
    with pytest.raises(ValueError, match=r"stage_epochs \[1, 1, 1, 1\] add up to 4"):
        trainer(tmp_path, epochs=3).fit(small(), datamodule=data())
    with pytest.raises(ValueError, match="num_experts=2; set the data config's super_domains"):
        trainer(tmp_path).fit(small(), datamodule=data(super_domains=3))
    with pytest.raises(ValueError, match="eval_methods"):
        small(eval_methods=["ensemble"])
    with pytest.raises(ValueError, match="mask must be one of"):
        small(mask="drop")


def test_a_hugging_face_image_model_directory_is_a_backbone(tmp_path):
    pytest.importorskip("transformers")
    from transformers import ResNetConfig, ResNetModel

    from zoo.nn.backbones import HFImageEncoder

    torch.manual_seed(0)
    ResNetModel(ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])).save_pretrained(
        tmp_path / "tiny")
    enc = HFImageEncoder(str(tmp_path / "tiny"), image_size=16, channels=1)
    assert enc.out_dim == 16 and enc(torch.randn(3, 1, 16, 16)).shape == (3, 16)
    model = MetaDMoE(enc, num_classes=3, num_experts=2, aggregator_heads=2, fresh_init=False)
    kept = enc.state_dict()
    assert all(torch.equal(model.experts[1].backbone.state_dict()[k], v) for k, v in kept.items())
    x = torch.randn(4, 1, 16, 16)
    assert model.adapted_params(x, model.teacher(x), first_order=True).keys() == dict(
        model.student.backbone.named_parameters()).keys()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        HFImageEncoder(str(tmp_path))
