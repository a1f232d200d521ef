"""Fail before training: the checks every episodic DataModule runs at set-up, and what ``zoo check`` prints.

A fit that dies in its final test (a test class with too few images, a corrupt image in the test split) wastes the
whole run, so ``EpisodicDataModule.setup`` runs :func:`check_splits` as soon as the sources exist: on every split
for ``fit`` (the final test is part of a fit), on the split it uses for ``validate`` or ``test`` (so testing does not
need a sound training split). Its constructor runs :func:`check_counts`, so a bad count names its argument at once.
``zoo check --config ...`` runs the same checks alone (``zoo.cli.lightning_cli``).
"""

from __future__ import annotations

from typing import Any

from datamodules.episodes import SPLITS, EpisodeDataset

#: The splits each Lightning stage relies on; ``fit`` (and no stage) means all of them.
STAGE_SPLITS = {"validate": ("val",), "test": ("test",)}


def check_counts(owner: str, **counts: int | None) -> None:
    """Raise naming the argument if a count (ways, shots, queries, episodes) is not a positive integer.

    ``None`` means "not set" (e.g. ``train_k_shot`` falls back to ``k_shot``) and is allowed; 0 is an error, never a
    stand-in for "not set".
    """
    for arg, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {arg} must be a positive integer, got {value!r}")


def check_splits(dm: Any, stage: str | None = None) -> list[str]:
    """Check the splits ``stage`` uses (see ``STAGE_SPLITS``) of a DataModule whose ``sources`` are built against its
    episode setting; return one summary line per split. A split already checked is not checked again (its line is
    remembered).

    Per split: enough classes for N-way and enough items per class for K-shot Q-query (``EpisodeDataset`` names
    the short classes), and, for sources cached in memory, every item decoded now (a decoding error names its
    file), so nothing of this kind can fail after training has started.
    """
    done: dict[str, str] = dm.__dict__.setdefault("_checked_splits", {})
    for split in STAGE_SPLITS.get(stage or "", SPLITS):
        if split in done:
            continue
        source = dm.sources[split]
        n, k, q = dm.episode_setting(split)
        dataset = EpisodeDataset(source, n, k, q, seed=dm.seed, split=split, name=dm.name)
        materialize = getattr(source, "materialize", None)  # ImageSource: a no-op unless cached in memory
        if materialize is not None:
            try:
                materialize()
            except Exception as err:
                raise ValueError(f"{dm.name} [{split}]: an image does not decode: {err}") from err
        done[split] = (f"{dm.name} [{split}]: {len(dataset.class_ids)} classes, {len(source)} items; "
                       f"{n}-way {k}-shot {q}-query, {dm.episodes[split]} episodes: ok")
    return [done[s] for s in STAGE_SPLITS.get(stage or "", SPLITS)]
