"""Everything that turns files into batches: the Episode type, the sampler, and one DataModule per dataset.

What every modality shares lives here at the top: the Episode type and sampler (episodes.py), the seeded and
episodic base DataModules (base.py), file safety and build caches (cache.py), argument checks (check.py),
episode-set hashes (episode_set.py), the record-file helpers every reader uses (files.py) and the WordNet 3.0
reader that the text, relations and qa benchmarks share (wordnet.py). Each modality is a package exporting its
DataModules, so a config names ``datamodules.<modality>.<Name>DataModule``: ``images`` (Glyphs, Omniglot, the
standard image layouts), ``text`` (text benchmarks, WordNet), ``bo`` (black-box optimisation tasks, HPO-B),
``relations`` (relation episodes with none-of-the-above, WordNet-Rel, FewRel), ``domains`` (items with domain ids
for domain generalisation: Glyphs-Domains, DomainBed, WILDS), ``qa`` (multiple-choice tasks: WordNet-QA,
commonsense QA files).

Naming rule (issue 22), for classes and module files alike:

* A LightningDataModule class is ``<Name>DataModule``, ``<Name>`` the dataset (``CUBDataModule``,
  ``GlyphsDataModule``, ``WordNetRelDataModule``, ``HPOBFunctionsDataModule``) or, for a base, what it adds
  (``EpisodicDataModule``, ``TextEpisodicDataModule``). The suffix is there because a package holds other classes
  named for the same dataset (the ``WordNet`` reader beside ``WordNetDataModule``, ``OmniglotRuns`` beside
  ``OmniglotDataModule``, ``GlyphsData`` beside ``GlyphsDataModule``), because it is Lightning's own convention,
  and because every base DataModule already had it. A DataModule's ``name`` (messages, tables, episode-set records) is
  ``<Name>``, so records written before the rule keep theirs.
* A module is named for its one idea. A dataset's DataModules live in the module named for that dataset or family,
  in snake case (``cub.py``, ``stanford.py``, ``fewrel.py``, ``hpob.py``, ``wordnet_rel.py``); a dataset big enough
  to be a package keeps its DataModule in ``<package>/datamodule.py`` (``images/glyphs/``); the DataModules a
  package's datasets extend are in ``base.py``; other code is named for what it does (``source.py`` decoding files
  into a Source, ``passages.py``, ``tasks.py``, ``transforms.py``, ``core.py``). No module is named for a kind of
  code (``readers.py``, ``datamodule.py`` beside others): the modules of those names that remain only re-export,
  for branches written before the rule, and go once nothing imports them. ``zoo.hub.moved.MOVED`` maps every old class
  path to the new one, and loaders resolve through it, so an old config or checkpoint still loads.

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
