"""Tests of zoo.methods.losses against values computed by hand on a few points in 2-D.

The hand computations are written out as arithmetic next to each assertion; the tolerance (1e-5) absorbs the
official epsilons (1e-6 inside every square root, 1e-7 in the ICNN denominators), which move these numbers by
less than 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.methods.losses import (
    LOSS_TERMS,
    OFFICIAL_PRESETS,
    combine_loss_terms,
    episode_loss_terms,
    euclidean_distance,
    icnn_loss,
    icnn_score,
    official_preset,
    proto_triplet_loss,
    prototypes,
    prototypical_logits,
    squared_euclidean,
    validate_loss_terms,
)

TOL = {"rel": 1e-5, "abs": 1e-5}


def line(*xs: float) -> torch.Tensor:
    """Points on the x axis of the plane (y = 0), so every distance is a difference of coordinates."""
    return torch.tensor([[x, 0.0] for x in xs])


def labels(*ys: int) -> torch.Tensor:
    return torch.tensor(ys)


def random_episode(n_way=4, shot=3, query=4, dim=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(n_way * shot, dim, generator=g, dtype=dtype)
    query_f = torch.randn(n_way * query, dim, generator=g, dtype=dtype)
    return (support, torch.arange(n_way).repeat_interleave(shot), query_f,
            torch.arange(n_way).repeat_interleave(query))


# -- distances, prototypes, logits ------------------------------------------------------------------------------------


def test_distances_by_hand():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    # (0,0)-(3,4): 9 + 16 = 25; (0,0)-(1,1): 2; (1,1)-(3,4): 4 + 9 = 13; (1,1)-(1,1): 0
    assert squared_euclidean(a, b).tolist() == [[25.0, 2.0], [13.0, 0.0]]
    d = euclidean_distance(a, b)
    assert d[0, 0].item() == pytest.approx(math.sqrt(25 + 1e-6), **TOL)
    assert d[1, 1].item() == pytest.approx(1e-3, rel=1e-4)  # sqrt(0 + 1e-6): the smallest possible distance


def test_squared_euclidean_matches_explicit_differences_and_gradients():
    g = torch.Generator().manual_seed(1)
    a = (torch.randn(6, 7, generator=g, dtype=torch.float64) * 30 + 100).requires_grad_()
    b = (torch.randn(5, 7, generator=g, dtype=torch.float64) * 30 + 100).requires_grad_()
    explicit = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    torch.testing.assert_close(squared_euclidean(a, b), explicit)
    ga = torch.autograd.grad(squared_euclidean(a, b).sum(), (a, b))
    gb = torch.autograd.grad(explicit.sum(), (a, b))
    torch.testing.assert_close(ga, gb)
    # far from the origin in float32: the mean shift keeps the cancellation error small
    a32, b32 = a.detach().float(), b.detach().float()
    torch.testing.assert_close(squared_euclidean(a32, b32).double(), explicit.detach(), rtol=1e-5, atol=1e-2)


def test_prototypes_any_order_and_not_detached():
    support = torch.tensor([[4.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 4.0], [6.0, 3.0]], requires_grad=True)
    y = labels(1, 0, 1, 0, 2)
    protos = prototypes(support, y, 3)
    # class 0: ((0,2) + (0,4)) / 2 = (0,3); class 1: ((4,0) + (2,0)) / 2 = (3,0); class 2: (6,3) alone
    assert protos.tolist() == [[0.0, 3.0], [3.0, 0.0], [6.0, 3.0]]
    protos[1].sum().backward()
    # d(c_1)/d(x) = 1/2 for each of class 1's two points, 0 elsewhere
    assert support.grad.tolist() == [[0.5, 0.5], [0, 0], [0.5, 0.5], [0, 0], [0, 0]]
    with pytest.raises(ValueError, match=r"classes \[2\] have no support"):
        prototypes(support.detach()[:4], y[:4], 3)
    with pytest.raises(ValueError, match="0..1"):
        prototypes(support.detach(), y, 2)


def test_prototypical_logits_by_hand():
    q = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # squared distances: q0 -> 1, 4; q1 -> 0, 1 + 4 = 5; logits = -d^2 / T with T = 2
    assert prototypical_logits(q, c, "euclidean", 2.0).tolist() == [[-0.5, -2.0], [0.0, -2.5]]
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    # cos((1,0),(1,1)) = 1/sqrt(2); cos((1,0),(0,3)) = 0; divided by T = 0.5
    got = prototypical_logits(q, c, "cosine", 0.5)
    assert got[0, 0].item() == pytest.approx(2 / math.sqrt(2), **TOL)
    assert got[0, 1].item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="distance"):
        prototypical_logits(q, c, "manhattan")


# -- Proto-Triplet ----------------------------------------------------------------------------------------------------


def test_proto_triplet_by_hand():
    protos = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    query = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    y = labels(0, 1, 2)
    # q0=(0,0), class 0: d(c0) = 1, nearest wrong = min(d(c1)=3, d(c2)=3) = 3 -> max(0, 1 - 3 + 0.5) = 0
    # q1=(2,0), class 1: d(c1) = 1, nearest wrong = d(c0) = 1 (d(c2) = sqrt(13)) -> 1 - 1 + 0.5 = 0.5
    # q2=(0,1), class 2: d(c2) = 2, nearest wrong = d(c0) = sqrt(2) (d(c1) = sqrt(10)) -> 2 - sqrt(2) + 0.5
    expected = (0.0 + 0.5 + (2 - math.sqrt(2) + 0.5)) / 3
    assert proto_triplet_loss(query, y, protos, margin=0.5).item() == pytest.approx(expected, **TOL)
    # margin 0: only q2 violates (2 > sqrt(2)); q1's positive and negative are equally far
    assert proto_triplet_loss(query, y, protos, margin=0.0).item() == pytest.approx((2 - math.sqrt(2)) / 3, **TOL)


def test_proto_triplet_gradient_reaches_support_through_prototypes():
    s, sy, q, qy = random_episode()
    s.requires_grad_(), q.requires_grad_()
    proto_triplet_loss(q, qy, prototypes(s, sy, 4), margin=5.0).backward()  # margin 5: every hinge active
    assert s.grad.abs().sum() > 0 and q.grad.abs().sum() > 0


# -- ICNN score -----------------------------------------------------------------------------------------------------


def test_icnn_score_self_by_hand():
    # P0=0 (c0), P1=1 (c0), P2=3 (c1), P3=5.5 (c1), P4=8.5 (c0); k=2, ipc = k+1 = 3 (self excluded):
    #   P0: P1 1 (same), P2 3 (diff), P3 5.5 (diff)   delta = 3
    #   P1: P0 1 (same), P2 2 (diff), P3 4.5 (diff)   delta = 2
    #   P2: P1 2 (diff), P3 2.5 (same), P0 3 (diff)   delta = 2
    #   P3: P2 2.5 (same), P4 3 (diff), P1 4.5 (diff) delta = 3
    #   P4: P3 3 (diff), P2 5.5 (diff), P1 7.5 (same) delta = 3
    x, y = line(0, 1, 3, 5.5, 8.5), labels(0, 0, 1, 1, 0)
    # same-class term, first k=2 neighbours, d/delta then / max(1, row max):
    #   P0 [1/3, 1] -> same 1/3;  P1 [1/2, 1] -> same 1/2;  P2 [1, 1.25] / 1.25 -> same (2.5/2)/1.25 = 1;
    #   P3 [2.5/3, 1] -> same 2.5/3;  P4 has no same-class neighbour among its first 2 (not in I_s)
    lambda_sc = 1 - (1 / 3 + 1 / 2 + 1 + 2.5 / 3) / 4
    # different-class term: first-2 different-class distances P0 [3], P1 [2], P2 [2], P3 [3], P4 [3, 5.5];
    # global max 5.5; per-point means, averaged over the 5 points that have one
    lambda_dc = (3 / 5.5 + 2 / 5.5 + 2 / 5.5 + 3 / 5.5 + (3 + 5.5) / 5.5 / 2) / 5
    gamma = (1 + 1 + 1 + 1 + 0) / 2 / 5  # same-class fraction among the first 2 neighbours
    out = icnn_score(x, y, k=2)
    assert (out.k, out.ipc) == (2, 3)
    assert out.lambda_sc.item() == pytest.approx(lambda_sc, **TOL)
    assert out.lambda_dc.item() == pytest.approx(lambda_dc, **TOL)
    assert out.gamma.item() == pytest.approx(gamma, **TOL)
    assert out.score.item() == pytest.approx(((lambda_sc + lambda_dc) / 2 + gamma) / 2, **TOL)
    assert icnn_loss(x, y, k=2).item() == pytest.approx(-math.log(((lambda_sc + lambda_dc) / 2 + gamma) / 2), **TOL)


def test_icnn_score_other_targets_by_hand_and_the_official_quirk():
    targets = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [10.0, 10.0]])
    target_y = labels(0, 1, 2, 0)
    q, qy = torch.tensor([[1.0, 0.0], [3.0, 0.0]]), labels(0, 0)
    # |T| = 4, k = 1 (1 + 2 < 4: no clamp), ipc = 2. Distances:
    #   q0=(1,0): t0 1 (same), t1 3 (diff), t2 sqrt(10) (diff), t3 sqrt(181)
    #   q1=(3,0): t1 1 (diff), t0 3 (same), t2 sqrt(18) (diff), t3 sqrt(149)
    # Correct (nothing dropped): q0 reads [t0 1 s, t1 3 d], delta 3; q1 reads [t1 1 d, t0 3 s], delta 1
    lambda_sc = 1 - (1 / 3) / 1  # only q0 has a same-class first neighbour: (1/3) / max(1, 1/3)
    lambda_dc = (1 / 1) / 1  # only q1 has a different-class first neighbour, 1 / global max 1
    gamma = (1 + 0) / 1 / 2
    out = icnn_score(q, qy, targets, target_y, k=1)
    assert out.score.item() == pytest.approx(((lambda_sc + lambda_dc) / 2 + gamma) / 2, **TOL)
    # Official rule: the 3 nearest minus the first, so each query loses its real nearest neighbour:
    #   q0 reads [t1 3 d, t2 sqrt(10) d], delta 3;  q1 reads [t0 3 s, t2 sqrt(18) d], delta sqrt(18)
    lambda_sc_off = 1 - (3 / math.sqrt(18)) / 1  # q1's same-class t0: 3/sqrt(18) < 1, no renormalisation
    lambda_dc_off = (3 / 3) / 1  # q0's different-class t1 = global max 3
    gamma_off = (0 + 1) / 1 / 2
    off = icnn_score(q, qy, targets, target_y, k=1, official_drop_first=True)
    assert off.score.item() == pytest.approx(((lambda_sc_off + lambda_dc_off) / 2 + gamma_off) / 2, **TOL)
    same_as_official = icnn_score(q, qy, targets, target_y, k=1, drop_first_neighbour=True)
    assert same_as_official.score.item() == pytest.approx(off.score.item(), abs=0)


def test_official_flag_changes_nothing_when_targets_are_the_scored_points():
    s, sy, q, qy = random_episode(seed=3)
    x, y = torch.cat([s, q]), torch.cat([sy, qy])
    for kwargs in ({}, {"ipc": 7}, {"k": 2}):
        default = icnn_score(x, y, **kwargs)
        official = icnn_score(x, y, official_drop_first=True, **kwargs)
        torch.testing.assert_close(default.score, official.score, rtol=0, atol=0)
    # ... and changes it when the targets are another set (queries against support)
    assert icnn_score(q, qy, s, sy).score.item() != icnn_score(q, qy, s, sy, official_drop_first=True).score.item()
    with pytest.raises(ValueError, match="contradicts"):
        icnn_score(x, y, official_drop_first=True, drop_first_neighbour=False)


def test_icnn_excludes_self_by_index_with_duplicate_points():
    # P0 and P1 coincide with different labels. Excluding self by index, P0's first neighbour is P1 (different
    # class, distance sqrt(1e-6)); the official "drop the nearest" may drop P1 instead and keep P0 itself.
    x, y = line(0, 0, 5, 6, 20), labels(0, 1, 0, 1, 1)
    out = icnn_score(x, y, k=2)
    # no point counts itself: P0's 2 nearest others are P1 (diff) and P2 (same); P1's are P0 (diff) and P2 (diff)
    # P2: P3 1 (diff), P0/P1 5 (one same, one diff); P3: P2 1 (diff), P0/P1 6; P4: P3 14 (same), P2 15 (diff)
    # gamma = mean over points of the same-class fraction among the first 2: P0 1/2, P1 0, P2 1/2, P3 1/2, P4 1/2
    assert out.gamma.item() == pytest.approx((0.5 + 0 + 0.5 + 0.5 + 0.5) / 5, **TOL)


# -- degenerate cases ------------------------------------------------------------------------------------------------


def test_icnn_one_shot_support_only_clamped():
    # 5-way 1-shot support: |T| = 5, k = 4 -> 4 + 2 >= 5, so k = 3, ipc = 4 and gamma = 1 exactly.
    # Points 0, 1, 3, 7, 12, every neighbour of a different class; first 3 neighbours of each:
    #   0: 1, 3, 7   1: 1, 2, 6   3: 2, 3, 4   7: 4, 5, 6   12: 5, 9, 11   (global max 11)
    x, y = line(0, 1, 3, 7, 12), labels(0, 1, 2, 3, 4)
    out = icnn_score(x, y, k=4)
    assert (out.k, out.ipc) == (3, 4)
    assert out.lambda_sc.item() == 1.0  # no same-class neighbour anywhere: 1 - 0 / 1e-7
    assert out.gamma.item() == 1.0  # clamped k
    lambda_dc = ((1 + 3 + 7) / 3 + (1 + 2 + 6) / 3 + (2 + 3 + 4) / 3 + (4 + 5 + 6) / 3 + (5 + 9 + 11) / 3) / 11 / 5
    assert out.lambda_dc.item() == pytest.approx(lambda_dc, **TOL)
    assert out.score.item() == pytest.approx(((1 + lambda_dc) / 2 + 1) / 2, **TOL)


def test_icnn_one_shot_support_only_unclamped_has_gamma_zero():
    # 8-way 1-shot (k + 2 = 6 < 8, like the official train_way 30): lambda_sc = 1 and gamma = 0, so the score is
    # (1 + lambda_dc) / 4 <= 1/2 and only lambda_dc carries a gradient (it pushes the points apart).
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    out = icnn_score(x, torch.arange(8), k=4)
    assert out.k == 4 and out.lambda_sc.item() == 1.0 and out.gamma.item() == 0.0
    assert out.score.item() == pytest.approx((1 + out.lambda_dc.item()) / 4, rel=1e-12)
    out.score.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_icnn_k_larger_than_the_set():
    s, sy, _, _ = random_episode(n_way=2, shot=3, query=0, seed=5)  # 6 points, 2 classes
    big = icnn_score(s, sy, k=10)
    assert (big.k, big.ipc) == (4, 5) and big.gamma.item() == 1.0  # k clamped to |T| - 2 = 4, gamma = 1
    torch.testing.assert_close(big.score, icnn_score(s, sy, k=4).score)  # 4 + 2 >= 6: the same clamp
    assert icnn_score(s, sy, k=3).gamma.item() != 1.0  # 3 + 2 < 6: no clamp, gamma is the purity
    with pytest.raises(ValueError, match="at least 3 target points"):
        icnn_score(s[:2], sy[:2])
    with pytest.raises(ValueError, match="need 7 target points"):
        icnn_score(s, sy, k=2, ipc=6)


def test_icnn_perfectly_separated_classes_score_one():
    # Two tight clusters of 3, k = 1, ipc = 2: every point's 2 nearest are its own class, so delta is infinite
    # (normalised same-class distances 0 -> lambda_sc = 1), no different-class neighbour among the first k
    # (lambda_dc = 1 by the official rule) and gamma = 1: score 1, loss 0, with a finite (zero) gradient.
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [9.0, 9.0], [9.1, 9.0], [9.0, 9.1]], requires_grad=True)
    out = icnn_score(x, labels(0, 0, 0, 1, 1, 1), k=1)
    assert (out.lambda_sc.item(), out.lambda_dc.item(), out.gamma.item()) == (1.0, 1.0, 1.0)
    loss = icnn_loss(x, labels(0, 0, 0, 1, 1, 1), k=1)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(x.grad).all()


# -- episode terms, combination, names --------------------------------------------------------------------------------


def test_every_term_is_finite_and_reaches_the_right_features():
    s, sy, q, qy = random_episode()
    for name in LOSS_TERMS:
        for query_protos in ((False, True) if name == "queryicnn" else (False,)):
            sf, qf = s.clone().requires_grad_(), q.clone().requires_grad_()
            terms = episode_loss_terms(sf, sy, qf, qy, 4, [name], margin=5.0, query_protos=query_protos)
            assert list(terms) == [name] and torch.isfinite(terms[name])
            terms[name].backward()
            assert sf.grad.abs().sum() > 0, name  # prototypes are not detached
            if name == "suppicnn":
                assert qf.grad is None
            else:
                assert qf.grad.abs().sum() > 0, name


def test_episode_terms_wiring():
    s, sy, q, qy = random_episode(n_way=3, shot=2, query=3)
    # well-separated classes: each point's 3 nearest are its own class, so the different-class distance delta
    # exists only because fullicnn reads ipc = shot + query = 5 neighbours (the official setting), not k + 1 = 3
    s, q = s * 0.1 + 5 * sy[:, None], q * 0.1 + 5 * qy[:, None]
    x, y = torch.cat([s, q]), torch.cat([sy, qy])
    t = episode_loss_terms(s, sy, q, qy, 3, "cross,fullicnn,queryicnn", k=2)
    torch.testing.assert_close(t["fullicnn"], icnn_loss(x, y, k=2, ipc=5))
    assert abs(t["fullicnn"].item() - icnn_loss(x, y, k=2).item()) > 1e-3
    torch.testing.assert_close(t["queryicnn"], icnn_loss(q, qy, s, sy, k=2))  # queries against the support
    logits = torch.zeros(len(qy), 3, dtype=s.dtype)  # uniform logits: CE = log 3
    assert episode_loss_terms(s, sy, q, qy, 3, ["cross"], logits=logits)["cross"].item() == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match="query_protos"):
        episode_loss_terms(s, sy, q, qy, 3, ["cross"], query_protos=True)


def test_episode_terms_invariant_to_episode_order():
    s, sy, q, qy = random_episode(seed=7)
    ps, pq = torch.randperm(len(sy), generator=torch.Generator().manual_seed(1)), torch.randperm(len(qy))
    kwargs = {"margin": 0.5, "k": 4}
    for query_protos in (False, True):
        names = list(LOSS_TERMS)
        a = episode_loss_terms(s, sy, q, qy, 4, names, query_protos=query_protos, **kwargs)
        b = episode_loss_terms(s[ps], sy[ps], q[pq], qy[pq], 4, names, query_protos=query_protos, **kwargs)
        for name in names:
            torch.testing.assert_close(a[name], b[name], msg=name)


def test_combination_is_the_equal_weight_average():
    terms = {"cross": torch.tensor(1.0), "prototriplet": torch.tensor(3.0), "fullicnn": torch.tensor(8.0)}
    assert combine_loss_terms(terms, ["cross", "prototriplet"]).item() == 2.0  # (1 + 3) / 2
    assert combine_loss_terms(terms, "cross,prototriplet,fullicnn").item() == 4.0  # (1 + 3 + 8) / 3
    with pytest.raises(ValueError, match="not computed"):
        combine_loss_terms(terms, ["suppicnn"])


def test_names_are_validated():
    # the official ResNet-12 scripts' typo: silently dropped there, an error here that lists the valid names
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['fullicn'\].*cross.*suppicnn.*queryicnn"):
        validate_loss_terms("cross,fullicn")
    with pytest.raises(ValueError, match="more than once"):
        validate_loss_terms(["cross", "cross"])
    with pytest.raises(ValueError, match="at least one"):
        validate_loss_terms([])
    with pytest.raises(ValueError, match="unknown term"):
        combine_loss_terms({"crossentropy": torch.tensor(1.0)}, ["cross"])
    s, sy, q, qy = random_episode()
    with pytest.raises(ValueError, match="valid names"):
        episode_loss_terms(s, sy, q, qy, 4, ["cross", "prototriplett"])
    assert validate_loss_terms(" cross , fullicnn ") == ["cross", "fullicnn"]


def test_official_presets():
    assert sorted(OFFICIAL_PRESETS) == list(range(1, 13))
    for names in OFFICIAL_PRESETS.values():
        assert validate_loss_terms(names) == names
    assert official_preset(12) == (["cross", "prototriplet", "fullicnn"], False)
    assert official_preset(5) == (["cross", "suppicnn", "queryicnn"], True)
    assert official_preset(2) == (["cross", "suppicnn", "queryicnn"], False)
    with pytest.raises(ValueError, match="1, 2"):
        official_preset(13)


def test_bad_inputs_name_the_argument():
    s, sy, q, qy = random_episode()
    with pytest.raises(ValueError, match="icnn_score: labels has 3 labels"):
        icnn_score(s, sy[:3])
    with pytest.raises(ValueError, match="targets given without target_labels"):
        icnn_score(q, qy, s)
    with pytest.raises(ValueError, match="proto_triplet_loss: query must be a 2-D float"):
        proto_triplet_loss(q[0], qy, s)
    with pytest.raises(ValueError, match="episode_loss_terms: support_y must be a 1-D integer"):
        episode_loss_terms(s, sy.float(), q, qy, 4, ["cross"])
