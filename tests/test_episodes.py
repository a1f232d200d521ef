"""The episode layer: shapes and labels, determinism, fixed evaluation sets, DDP striping, bad input."""

from __future__ import annotations

import pytest
import torch

from datamodules.base import EpisodicDataModule
from datamodules.episodes import (
    Episode,
    EpisodeDataset,
    EpisodeSampler,
    ListSource,
    TensorSource,
)


def make_source(n_classes=10, per_class=20, offset=100):
    labels = torch.arange(n_classes).repeat_interleave(per_class) + offset  # non-contiguous ids on purpose
    data = torch.arange(len(labels)).view(-1, 1, 1, 1).to(torch.uint8)  # item i holds value i % 256
    return TensorSource(data.expand(-1, 1, 2, 2).clone(), labels)


class Toy(EpisodicDataModule):
    def __init__(self, **kw):
        super().__init__(**kw)

    def build_sources(self):
        return {"train": make_source(10, offset=0), "val": make_source(6, offset=100),
                "test": make_source(6, offset=200)}


def test_episode_shapes_labels_and_classes():
    src = make_source()
    ds = EpisodeDataset(src, n_way=5, k_shot=2, q_query=3, seed=0, split="train")
    ep = ds[(0, 7)]
    assert isinstance(ep, Episode) and ep.index == 7
    assert ep.support_x.shape == (10, 1, 2, 2) and ep.query_x.shape == (15, 1, 2, 2)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ep.query_y.tolist() == [c for c in range(5) for _ in range(3)]
    assert (ep.n_way, ep.k_shot, ep.q_query) == (5, 2, 3)
    # every item belongs to the class its local label names, and no item is used twice
    items, classes = ds.draw(0, 7)
    assert len(set(items.tolist())) == len(items)
    item_labels = src.labels[items]
    local = torch.cat([ep.support_y, ep.query_y])
    assert torch.equal(item_labels, ep.classes[local])
    assert len(set(ep.classes.tolist())) == 5


def test_same_key_same_episode_different_key_different_episode():
    src = make_source()
    a = EpisodeDataset(src, 5, 1, 5, seed=3, split="train")
    b = EpisodeDataset(src, 5, 1, 5, seed=3, split="train")
    assert torch.equal(a.draw(2, 11)[0], b.draw(2, 11)[0])
    assert not torch.equal(a.draw(2, 11)[0], a.draw(3, 11)[0])  # another epoch
    assert not torch.equal(a.draw(2, 11)[0], a.draw(2, 12)[0])  # another index
    c = EpisodeDataset(src, 5, 1, 5, seed=4, split="train")
    assert not torch.equal(a.draw(2, 11)[0], c.draw(2, 11)[0])  # another seed


def test_sampler_stripes_ranks_equal_counts_and_union_is_single_process_set():
    single = list(EpisodeSampler(10))
    ranks = [list(EpisodeSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert {len(r) for r in ranks} == {4}  # ceil(10 / 3), padded
    seen = [k for r in ranks for k in r]
    assert set(seen) == set(single)
    firsts = [set(r[:3]) for r in ranks]  # the unpadded part: disjoint
    assert not (firsts[0] & firsts[1]) and not (firsts[1] & firsts[2])


def test_train_epochs_differ_but_eval_set_is_fixed():
    s = EpisodeSampler(5)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    assert list(s) != e0
    fixed = EpisodeSampler(5, fixed_epoch=0)
    fixed.set_epoch(7)
    assert list(fixed) == e0


def test_datamodule_loaders_fixed_eval_episodes_and_train_way():
    dm = Toy(n_way=3, k_shot=1, q_query=2, train_n_way=5, train_episodes=4, val_episodes=6, test_episodes=6)
    train = list(dm.train_dataloader())
    assert len(train) == 4 and all(ep.n_way == 5 for ep in train)
    val1 = [ep.classes.tolist() for ep in dm.val_dataloader()]
    val2 = [ep.classes.tolist() for ep in dm.val_dataloader()]
    assert val1 == val2 and all(len(c) == 3 for c in val1)
    assert all(c >= 100 for cs in val1 for c in cs)  # drawn from the validation split only


def test_eval_seed_fixes_evaluation_episodes_while_seed_varies_training():
    def episodes(dm, split):
        return [(ep.classes.tolist(), ep.support_x.sum().item()) for ep in dm.loader(split)]

    kw = dict(n_way=3, k_shot=1, q_query=2, train_episodes=6, val_episodes=6, test_episodes=6)
    a, b = Toy(seed=1, eval_seed=9, **kw), Toy(seed=2, eval_seed=9, **kw)
    assert episodes(a, "train") != episodes(b, "train")
    assert episodes(a, "test") == episodes(b, "test") and episodes(a, "val") == episodes(b, "val")
    assert episodes(Toy(seed=9, **kw), "test") == episodes(a, "test")  # eval_seed keys them as seed would


def test_episodes_do_not_depend_on_worker_count():
    a = Toy(n_way=3, k_shot=1, q_query=2, test_episodes=6, num_workers=0)
    b = Toy(n_way=3, k_shot=1, q_query=2, test_episodes=6, num_workers=2)
    ea = [ep.support_x.sum().item() for ep in a.test_dataloader()]
    eb = [ep.support_x.sum().item() for ep in b.test_dataloader()]
    assert ea == eb


def test_class_with_too_few_items_names_the_class_and_counts():
    labels = torch.tensor([0] * 20 + [1] * 3)
    src = ListSource([f"t{i}" for i in range(23)], labels, class_names={0: "cat", 1: "dog"})
    with pytest.raises(ValueError, match=r"need 6 items per class.*'dog' has 3"):
        EpisodeDataset(src, n_way=2, k_shot=1, q_query=5, seed=0, split="train")


def test_too_few_classes_and_bad_arguments():
    with pytest.raises(ValueError, match="need 20 classes"):
        EpisodeDataset(make_source(10), n_way=20, k_shot=1, q_query=1, seed=0, split="train")
    with pytest.raises(ValueError, match="k_shot must be >= 1"):
        EpisodeDataset(make_source(10), n_way=2, k_shot=0, q_query=1, seed=0, split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        EpisodeDataset(make_source(10), n_way=2, k_shot=1, q_query=1, seed=0, split="dev")


def test_text_items_come_as_lists():
    src = ListSource([f"text {i}" for i in range(40)], torch.arange(4).repeat_interleave(10))
    ep = EpisodeDataset(src, 2, 2, 3, seed=0, split="test")[(0, 0)]
    assert isinstance(ep.support_x, list) and len(ep.support_x) == 4 and len(ep.query_x) == 6
