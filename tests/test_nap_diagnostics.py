"""NAP diagnostics: rank correlation by hand, the diagnostics on a network that cannot read its history (they must
flag it), and on the shipped two-stage checkpoints (they must pass: the network conditions on its history)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from datamodules.bo.synthetic import GPPriorFunctionsDataModule
from zoo.methods.nap import NAPModule, NAPNetwork
from zoo.methods.nap_diagnostics import context_curves, history_swap_correlation, ranks, spearman, summarise_diagnostics

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "nap"


def test_ranks_and_spearman_by_hand():
    assert ranks(torch.tensor([10.0, 30.0, 20.0, 20.0])).tolist() == [1.0, 4.0, 2.5, 2.5]
    # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 1, 1, 0) -> 1 - 12 / 60
    assert math.isclose(spearman(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])), 0.8)
    assert math.isclose(spearman(torch.tensor([1.0, 5.0, 9.0]), torch.tensor([3.0, 2.0, -7.0])), -1.0)
    # monotone transforms do not change it
    x = torch.tensor([0.3, 0.1, 0.7, 0.5])
    assert math.isclose(spearman(x, x.exp() * 4), 1.0)
    # ties: ranks (1.5, 1.5, 3) and (1, 2, 3) -> Pearson of (-0.75, -0.75, 1.5) and (-1, 0, 1) = 2.25 / sqrt(3.375 * 2)
    assert math.isclose(spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])),
                        2.25 / math.sqrt(3.375 * 2), rel_tol=1e-9)
    assert math.isnan(spearman(torch.ones(3), torch.tensor([1.0, 2.0, 3.0])))
    with pytest.raises(ValueError, match="same length"):
        spearman(torch.ones(3), torch.ones(4))


def _tasks(n_tasks: int = 6, n: int = 120) -> list[dict[str, torch.Tensor]]:
    dm = GPPriorFunctionsDataModule(dim=2, num_candidates=n, eval_num_candidates=n, val_tasks=n_tasks, val_seeds=1,
                          lengthscale_low=0.2, lengthscale_high=0.4)
    return dm.fixed_tasks("val")


def _family_tasks(family: str, n_tasks: int) -> list[dict[str, torch.Tensor]]:
    """Validation functions of ``configs/nap/<family>.yaml`` (pools of the evaluation size; never trained on)."""
    import importlib

    from zoo.cli.compose import load_composed

    cfg = load_composed(CONFIGS / f"{family}.yaml")["data"]
    module, name = cfg["class_path"].rsplit(".", 1)
    dm = getattr(importlib.import_module(module), name)(**{**cfg["init_args"], "val_tasks": n_tasks, "val_seeds": 1})
    return dm.fixed_tasks("val")


def _blind(net: NAPNetwork) -> NAPNetwork:
    """Random weights, then the attention outputs zeroed: every token sees only itself, never the history."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for layer in net.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    return net


def test_diagnostics_flag_a_network_that_ignores_its_history():
    net = _blind(NAPNetwork(2, d_model=16, n_layers=2, n_heads=2, dim_feedforward=32, n_buckets=50, af_hidden=16))
    tasks = _tasks()
    curves = context_curves(net, tasks, [5, 20, 50])
    swap = history_swap_correlation(net, tasks, 20, af_name="mlp")
    s = summarise_diagnostics(curves, swap)
    # predictions for the same targets do not move with the context: no gain at all
    assert s["nll_50_minus_5"]["diff"] == pytest.approx(0.0, abs=1e-5)
    assert s["spearman_50_minus_5"]["diff"] == pytest.approx(0.0, abs=1e-6)
    # the MLP still sees the incumbent, which differs between the two histories; the ranking barely does
    assert s["history_swap_spearman"]["mean"] > 0.99


def test_diagnostics_reject_bad_input():
    net = NAPNetwork(2, d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, n_buckets=50, af_hidden=16)
    tasks = _tasks(2, 30)
    with pytest.raises(ValueError, match="needs more than 50"):
        context_curves(net, tasks, [5, 50])
    with pytest.raises(ValueError, match="at least two tasks"):
        history_swap_correlation(net, tasks[:1], 5)


SWAP_HIGH = pytest.mark.xfail(strict=True, reason=(
    "known failure, docs/systems/nap.md, Results: on Hartmann-3 the ranking under another task's history still correlates "
    "> 0.9 with the task's own (0.97): the family's tasks are one landscape under small shifts, so another task's "
    "history points to nearly the same optimum and the ranking barely needs to move; the context curves of the "
    "same models pass (the test above)"))


def _shipped(family: str, n_tasks: int = 8):
    from zoo.methods.bo import load_nap

    tasks = _family_tasks(family, n_tasks)
    for name, af in ((f"nap-sl-{family}", "ei"), (f"nap-{family}", "mlp")):
        model = load_nap(name)  # by registry name, sha256-checked
        assert isinstance(model, NAPModule)
        yield name, model.net, af, tasks


@pytest.mark.parametrize("family", ["gp-prior-d4", "hartmann3"])
def test_shipped_checkpoints_predict_better_with_more_context(family):
    """The registered two-stage models on held-out validation functions of their family: held-out NLL at 50
    context points below that at 5, and the rank correlation of the predicted mean with the truth higher at 50
    than at 5 (paired over tasks, the 95% interval excluding 0). The first port's checkpoints and the first
    two-stage ones (official initialisation, 320 likelihood steps) failed this on GP prior D=4 (NLL flat in the
    context size)."""
    for name, net, _, tasks in _shipped(family):
        s = summarise_diagnostics(context_curves(net, tasks, [5, 50]), [1.0])
        nll, rho = s["nll_50_minus_5"], s["spearman_50_minus_5"]
        assert nll["diff"] + nll["ci95"] < 0, (name, s)
        assert rho["diff"] - rho["ci95"] > 0, (name, s)


@pytest.mark.parametrize("family,kind", [("gp-prior-d4", "nap"), ("gp-prior-d4", "nap-sl"),
                                         pytest.param("hartmann3", "nap", marks=SWAP_HIGH),
                                         pytest.param("hartmann3", "nap-sl", marks=SWAP_HIGH)])
def test_shipped_acquisitions_depend_on_the_history(family, kind):
    """The acquisition ranking under a task's own 20-point history vs another task's: mean Spearman correlation
    clearly below 1 (< 0.9). The first port's policy scored 0.9995."""
    for name, net, af, tasks in _shipped(family):
        if name == f"{kind}-{family}":
            swap = history_swap_correlation(net, tasks, 20, af_name=af)
            assert sum(swap) / len(swap) < 0.9, (name, swap)
