"""The episode-set fingerprint: equal for the same episodes, and naming what differs otherwise."""

from __future__ import annotations

import torch

from datamodules.episode_set import episode_set_differences, episode_set_record
from datamodules.episodes import EpisodeDataset, TensorSource


def dataset(seed: int = 0, data: torch.Tensor | None = None, k_shot: int = 1) -> EpisodeDataset:
    labels = torch.arange(6).repeat_interleave(4)  # 6 classes of 4 items
    data = torch.arange(24, dtype=torch.uint8).reshape(24, 1, 1, 1) if data is None else data
    return EpisodeDataset(TensorSource(data, labels), n_way=3, k_shot=k_shot, q_query=2, seed=seed, split="test")


def test_same_episodes_same_hash_whatever_the_order_of_indices():
    a = episode_set_record(dataset(), range(10), "toy")
    b = episode_set_record(dataset(), reversed(range(10)), "toy")
    assert a == b and episode_set_differences(a, b) == []
    assert (a["episodes"], a["first_index"], a["last_index"], a["n_way"], a["q_query"]) == (10, 0, 9, 3, 2)


def test_a_different_seed_or_setting_is_named():
    a = episode_set_record(dataset(), range(10), "toy")
    assert episode_set_differences(a, episode_set_record(dataset(seed=1), range(10), "toy")) == ["seed: 0 vs 1"]
    assert episode_set_differences(a, episode_set_record(dataset(k_shot=2), range(10), "toy")) == ["k_shot: 1 vs 2"]
    assert episode_set_differences(a, episode_set_record(dataset(), range(5), "toy")) == [
        "episodes: 10 vs 5", "last_index: 9 vs 4"]


def test_the_same_description_over_other_item_contents_differs():
    """A rebuilt dataset (one stored item changed) draws the same positions but other episodes."""
    changed = torch.arange(24, dtype=torch.uint8).reshape(24, 1, 1, 1).clone()
    changed[5] = 200
    a = episode_set_record(dataset(), range(10), "toy")
    b = episode_set_record(dataset(data=changed), range(10), "toy")
    assert a["hash"] != b["hash"]
    assert episode_set_differences(a, b) == [
        "same description but different episode contents (another dataset build, split or sampler)"]
