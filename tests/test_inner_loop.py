"""The inner-loop toolkit against finite differences and values derived by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.training.inner_loop import adapt, functional_forward, reptile_interpolate, select, use_batch_statistics


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def tiny_task():
    g = torch.Generator().manual_seed(1)
    xs, xq = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    return xs, torch.tensor([0, 1, 0, 1, 0, 1]), xq, torch.tensor([1, 0, 1, 1, 0])


def meta_loss(model, params, first_order=False, which=None, steps=2, lr=0.3):
    xs, ys, xq, yq = tiny_task()
    fast = adapt(params, lambda p: F.cross_entropy(functional_forward(model, p, xs), ys), steps, lr,
                 first_order=first_order, which=which)
    return F.cross_entropy(functional_forward(model, fast, xq), yq)


def test_second_order_meta_gradient_equals_central_finite_differences():
    model = tiny_model()
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(meta_loss(model, params), list(params.values()))
    eps = 1e-6
    for (name, p), g in zip(params.items(), grads):
        for i in range(p.numel()):
            shifted = {n: t.detach().clone() for n, t in params.items()}
            shifted[name].view(-1)[i] += eps
            up = meta_loss(model, shifted)
            shifted[name].view(-1)[i] -= 2 * eps
            down = meta_loss(model, shifted)
            assert float(g.view(-1)[i]) == pytest.approx(float((up - down) / (2 * eps)), abs=1e-7), (name, i)


def test_first_order_meta_gradient_differs_from_the_second_order_one():
    model = tiny_model()
    params = dict(model.named_parameters())
    second = torch.autograd.grad(meta_loss(model, params), list(params.values()))
    first = torch.autograd.grad(meta_loss(model, params, first_order=True), list(params.values()))
    # Same loss value, different gradients: FOMAML drops the Hessian terms.
    assert float(meta_loss(model, params).detach()) == pytest.approx(float(meta_loss(model, params, True).detach()))
    assert max(float((a - b).abs().max()) for a, b in zip(first, second)) > 1e-4


def test_one_step_on_a_quadratic_gives_the_hand_derived_meta_gradients():
    """Support loss a/2 theta^2, query loss b/2 (theta - c)^2, one step of size alpha from theta = 2 with
    a=2, b=3, c=1, alpha=0.1: theta' = (1 - alpha a) theta = 1.6; first order b (theta' - c) = 1.8;
    second order b (theta' - c)(1 - alpha a) = 1.44."""
    for first_order, expected in ((True, 1.8), (False, 1.44)):
        theta = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
        fast = adapt({"theta": theta}, lambda p: 0.5 * 2.0 * p["theta"] ** 2, steps=1, lr=0.1, first_order=first_order)
        assert float(fast["theta"]) == pytest.approx(1.6)
        (0.5 * 3.0 * (fast["theta"] - 1.0) ** 2).backward()
        assert float(theta.grad) == pytest.approx(expected)


def test_no_parameter_is_modified_in_place():
    model = tiny_model()
    before = {n: (p.detach().clone(), p._version) for n, p in model.named_parameters()}
    loss = meta_loss(model, dict(model.named_parameters()), steps=3)
    loss.backward()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n][0]) and p._version == before[n][1], n


def test_a_subset_adapts_only_its_parameters_and_passes_the_others_through():
    model = tiny_model()
    params = dict(model.named_parameters())
    xs, ys, _, _ = tiny_task()
    fast = adapt(params, lambda p: F.cross_entropy(functional_forward(model, p, xs), ys), 2, 0.3, which="2.")
    for name in ("0.weight", "0.bias"):
        assert fast[name] is params[name]
    for name in ("2.weight", "2.bias"):
        assert not torch.equal(fast[name], params[name])
    # the frozen part gets no meta-gradient through the inner loop's own steps, only through the query pass
    loss = meta_loss(model, params, which=["2.weight", "2.bias"])
    assert all(g is not None for g in torch.autograd.grad(loss, list(params.values())))


def test_reptile_interpolation_matches_the_hand_computed_value():
    theta = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([4.0])}
    phi = {"w": torch.tensor([3.0, 0.0])}
    out = reptile_interpolate(theta, phi, epsilon=0.25)
    assert torch.equal(out["w"], torch.tensor([1.5, 1.5]))  # 1 + .25 (3 - 1), 2 + .25 (0 - 2)
    assert out["b"] is theta["b"] and torch.equal(theta["w"], torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="not in theta"):
        reptile_interpolate(theta, {"x": torch.zeros(1)}, 0.5)


def test_selectors_name_what_they_cannot_find():
    names = ["backbone.w", "head.weight", "head.bias"]
    assert select(names, "head.") == ["head.weight", "head.bias"]
    assert select(names, lambda n: n.endswith("w")) == ["backbone.w"]
    with pytest.raises(ValueError, match="picks none"):
        select(names, "haed.")
    with pytest.raises(ValueError, match="no parameter"):
        select(names, ["head.wieght"])


def test_batch_statistics_leave_no_buffers_and_run_under_vmap():
    net = use_batch_statistics(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    assert dict(net.named_buffers()) == {}
    params = dict(net.named_parameters())
    x = torch.randn(2, 5, 3)
    batched = torch.func.vmap(lambda xb: functional_forward(net, params, xb))(x)
    # each task is normalised with its own statistics, as if run alone
    assert torch.allclose(batched[1], net(x[1]), atol=1e-6)


def test_batch_statistics_norm_matches_batchnorm_and_its_second_order_gradients_survive_vmap():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double()
    nn.init.normal_(bn.weight), nn.init.normal_(bn.bias)
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    expected = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
    net = use_batch_statistics(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), bn, nn.ReLU(), nn.Flatten(),
                                             nn.Linear(4 * 16, 3))).double()
    assert torch.allclose(net[1](x), expected, atol=1e-12)
    params = dict(net.named_parameters())
    xs, ys = torch.randn(3, 6, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (3, 6))

    def task(xb, yb):
        fast = adapt(params, lambda p: F.cross_entropy(functional_forward(net, p, xb), yb), 1, 0.4)
        return F.cross_entropy(functional_forward(net, fast, xb), yb)

    batched = torch.autograd.grad(torch.func.vmap(task)(xs, ys).mean(), list(params.values()))
    looped = torch.autograd.grad(sum(task(xs[i], ys[i]) for i in range(3)) / 3, list(params.values()))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(batched, looped))
