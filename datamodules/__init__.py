"""Everything that turns files into batches: the Episode type, the sampler, and one DataModule per dataset.

What every modality shares lives here at the top: the Episode type and sampler (episodes.py), the seeded and
episodic base DataModules (base.py), file safety and build caches (cache.py), argument checks (check.py) and
episode-set hashes (episode_set.py). Each modality is a package exporting its DataModules, so a config names
``datamodules.<modality>.<Class>``: ``images`` (Glyphs, the standard image layouts), ``text`` (text benchmarks,
WordNet), ``bo`` (black-box optimisation tasks, HPO-B), ``relations`` (relation episodes with none-of-the-above,
WordNet-Rel, FewRel), ``domains`` (items with domain ids for domain generalisation: Glyphs-Domains, DomainBed,
WILDS), ``qa`` (multiple-choice tasks: WordNet-QA, commonsense QA files). Each is built on the shared modules
(and on a reader of another package where it reads the same files, e.g. WordNet), and ``files.py`` holds the
record-file helpers every reader uses.

Arguments use one word per idea: ``root`` is where the user's source files are, ``cache_dir`` where a DataModule
writes what it derives from them (builds, fitted models); a path to one file is named for that file.
"""

from typing import Any

# Loaded on first use, so the light modules (cache.py, episode_set.py) import without Lightning and torch: the
# `zoo` command's listing subcommands (`zoo compare`, `zoo report`) read finished runs through them.
_LAZY = {"Episode": "datamodules.episodes", "EpisodeDataset": "datamodules.episodes",
         "EpisodeSampler": "datamodules.episodes", "EpisodicDataModule": "datamodules.base",
         "ListSource": "datamodules.episodes", "Source": "datamodules.episodes", "TensorSource": "datamodules.episodes"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'datamodules' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
