"""The fingerprint of a fixed evaluation episode set, so two runs can be proven to be tested on the same episodes.

Comparing methods on the very same episodes (a paired difference) is the zoo's protocol; it is only valid if the
episodes really are the same. The configuration alone does not prove that (a rebuilt dataset, a changed sampler or
split gives other episodes under the same seed), so the fingerprint hashes what each episode *contains*:

* the content of the split the episodes are drawn from (:func:`source_digest`: the raw stored tensor of in-memory
  images, the texts of a text split, the labels of any split), hashed once;
* for every episode, in index order: its index, its classes (the dataset's own class ids) and the positions of
  its support and query items in that split, in episode order;
* a readable description beside the hash (dataset, split, n/k/q, seed, count) that says *what* differs when two
  hashes differ.

Cost: one sha256 over the split's stored items, then one draw per episode (no transform, no model): 0.6 s for
the 1,000 Glyphs test episodes on this project's shared 2-core machine under load, timed around
``episode_set_record(Glyphs().dataset("test"), range(1000), "Glyphs")``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

import torch

from safefiles import atomic_write_text
from datamodules.episodes import EpisodeDataset, ListSource, Source, TensorSource

#: Bumped when the hashed content changes, so old and new records never compare equal by accident.
HASH_VERSION = 1


def source_digest(source: Source) -> str:
    """sha256 of a split's stored items and labels (in-memory sources), or of its labels alone (other sources)."""
    digest = hashlib.sha256(source.labels.to(torch.int64).numpy().tobytes())
    if isinstance(source, TensorSource):
        digest.update(source.data.contiguous().numpy().tobytes())  # raw stored items, before any transform
    elif isinstance(source, ListSource):
        digest.update(json.dumps(source.items, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def episode_set_record(dataset: EpisodeDataset, indices: Iterable[int], name: str) -> dict[str, Any]:
    """Describe and fingerprint the episodes ``(epoch 0, index)`` of a fixed evaluation set of dataset ``name``.

    Returns ``{"hash", "hash_version", "dataset", "split", "n_way", "k_shot", "q_query", "seed", "episodes",
    "first_index", "last_index"}``; ``hash`` is a sha256 over the episodes' contents (see the module docstring).
    """
    indices = sorted({int(i) for i in indices})
    if not indices:
        raise ValueError("episode_set_record: no episode indices given")
    digest = hashlib.sha256(f"metazoo-episode-set/v{HASH_VERSION}/{source_digest(dataset.source)}".encode())
    for index in indices:
        items, classes = dataset.draw(0, index)
        digest.update(f"|{index}|".encode())
        digest.update(dataset.class_ids[classes].to(torch.int64).numpy().tobytes())
        digest.update(items.to(torch.int64).numpy().tobytes())
    return {"hash": digest.hexdigest(), "hash_version": HASH_VERSION, "dataset": name,
            "split": dataset.split, "n_way": dataset.n_way, "k_shot": dataset.k_shot, "q_query": dataset.q_query,
            "seed": dataset.seed, "episodes": len(indices), "first_index": indices[0], "last_index": indices[-1]}


def episode_set_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable reasons two episode-set records differ (empty when their hashes agree).

    Names the described fields that differ; when they all agree but the hashes do not, the episodes' contents
    differ (another dataset build, split or sampler version).
    """
    if a.get("hash") == b.get("hash"):
        return []
    fields = ["hash_version", "dataset", "split", "n_way", "k_shot", "q_query", "seed", "episodes", "first_index",
              "last_index"]
    diffs = [f"{f}: {a.get(f)!r} vs {b.get(f)!r}" for f in fields if a.get(f) != b.get(f)]
    return diffs or ["same description but different episode contents (another dataset build, split or sampler)"]


def write_episode_set(datamodule: Any, split: str, indices: Iterable[int], path: str | os.PathLike) -> dict | None:
    """Write the record of the ``split`` episodes ``indices`` of ``datamodule`` to ``path`` (JSON) and return it.

    Returns None, writing nothing, for a DataModule that does not draw episodes with the shared sampler (NAP's
    function families): there is no episode set to fingerprint.
    """
    from datamodules.base import EpisodicDataModule  # Lightning: not needed by readers of finished runs (zoo compare)

    if not isinstance(datamodule, EpisodicDataModule):
        return None
    record = episode_set_record(datamodule.dataset(split), indices, datamodule.name)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record
