"""Reading a finished run back from its run directory: the one place ``zoo compare`` and ``zoo report`` do it.

A run directory (``callbacks.run_dir.run_dir``: ``runs/<project>/<group>-<name>-<run id>`` with W&B, named by
:func:`run_label`; ``runs/<name>/version_N`` with CSV) holds what the shipped callbacks and loggers write:

* ``config.yaml`` (``fit``) or ``test-config.yaml`` (``test``): the resolved LightningCLI config;
* ``test_episodes.csv`` (``episode,acc,loss`` per test episode) and ``test_episodes.json`` (which episodes:
  :mod:`datamodules.episode_set`), from ``callbacks.EpisodeTable``;
* ``metrics.csv``: every logged metric by step (Lightning's CSVLogger, or the CSV mirror of ``zoo.WandbLogger``);
* ``test_episode.png``: the episode gallery picture (``callbacks.EpisodeGallery``);
* ``failed.txt`` / ``interrupted.txt``: a ``fit`` that did not finish (``callbacks.run_dir.mark_unfinished``).

A file that cannot be read is an error naming it (and the line, where there is one).

Everything but the config is optional here; each consumer says what it needs and names the missing file.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILES = ("config.yaml", "test-config.yaml", "validate-config.yaml", "predict-config.yaml")


def run_label(group: str | None, name: str | None, run_id: str) -> str:
    """A W&B run's directory name and report label, ``<group>-<name>-<run id>`` (the parts that are set).

    The id keeps labels unique (a setting's seeds share group and name); group and name
    (``--trainer.logger.init_args.group/name``) make them readable. Characters that a path or a shell would
    misread (``/``, spaces, ...) become ``_``; the id is W&B's own (letters and digits), so it is always the part
    after the last ``-`` (:func:`run_id_of`).
    """
    parts = [re.sub(r"[^A-Za-z0-9_.+=@-]", "_", str(p)).strip(".") for p in (group, name) if p not in (None, "")]
    return "-".join([*[p for p in parts if p], str(run_id)])


def run_id_of(directory_name: str) -> str:
    """The W&B run id in a run directory's name (:func:`run_label`); a bare id (runs made before labels) is
    itself."""
    return directory_name.rsplit("-", 1)[-1]


@dataclass
class Run:
    """What one run directory holds (see module docstring); absent files leave their field empty."""

    path: Path
    config: dict[str, Any]
    episodes: dict[int, float] = field(default_factory=dict)  # test episode index -> accuracy
    episode_set: dict[str, Any] | None = None
    metrics: list[dict[str, float]] = field(default_factory=list)  # metrics.csv rows, empty cells dropped
    gallery: Path | None = None
    unfinished: str | None = None  # why its fit did not finish (failed.txt / interrupted.txt), or None

    @property
    def name(self) -> str:
        """The run's label in ``zoo compare`` and ``zoo report``: ``<group>-<name>-<run id>`` (:func:`run_label`,
        from the resolved config's logger, so a run made before directories were labelled reads the same), else
        ``<parent>/<run dir>`` (``csv/version_0``: a CSV run's folder is already its name)."""
        logger = (self.config.get("trainer") or {}).get("logger") if isinstance(self.config, dict) else None
        logger = logger[0] if isinstance(logger, list) and logger else logger
        args = logger.get("init_args") if isinstance(logger, dict) else None
        if isinstance(args, dict) and str(logger.get("class_path", "")).endswith("WandbLogger"):
            return run_label(args.get("group"), args.get("name"), run_id_of(self.path.name))
        return f"{self.path.parent.name}/{self.path.name}"

    def curve(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """``(x values, values)`` of one logged metric, in logging order; ``x`` is the column to plot against
        (``step``, or ``epoch`` for a per-epoch metric), the row's position where a row lacks it."""
        rows = [r for r in self.metrics if key in r]
        return [r.get(x, i) for i, r in enumerate(rows)], [r[key] for r in rows]

    def last(self, key: str) -> float | None:
        """The last logged value of a metric (a test metric is logged once), or None."""
        values = self.curve(key)[1]
        return values[-1] if values else None


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a readable CSV file ({type(err).__name__}: {err})") from None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def load_run(path: str | Path) -> Run:
    """Read a run directory; raises FileNotFoundError naming the directory when it holds no resolved config."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run directory (expected the folder holding config.yaml and "
                                "test_episodes.csv, e.g. runs/metazoo/<run id> or runs/csv/version_0)")
    config_file = next((path / n for n in CONFIG_FILES if (path / n).is_file()), None)
    if config_file is None:
        raise FileNotFoundError(f"{path}: no resolved config ({' / '.join(CONFIG_FILES)}); is this a run directory?")
    try:
        config = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{config_file}: cannot be read as YAML: {type(err).__name__}: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: expected a mapping (a resolved LightningCLI config), got a "
                         f"{type(config).__name__}")
    run = Run(path=path, config=config)
    for marker in ("failed.txt", "interrupted.txt"):  # callbacks.run_dir.mark_unfinished: the fit did not finish
        if (path / marker).is_file():
            run.unfinished = (path / marker).read_text(errors="replace").strip() or marker
    episodes_csv = path / "test_episodes.csv"
    if episodes_csv.is_file():
        for i, row in enumerate(_read_csv(episodes_csv)):
            try:
                run.episodes[int(row["episode"])] = float(row["acc"])
            except (KeyError, ValueError) as err:
                raise ValueError(f"{episodes_csv}, row {i + 2}: expected integer 'episode' and numeric 'acc' "
                                 f"columns, got {row}") from err
    episode_set = path / "test_episodes.json"
    if episode_set.is_file():
        try:
            run.episode_set = json.loads(episode_set.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
            raise ValueError(f"{episode_set}{line}: not valid JSON ({err})") from None
        if not isinstance(run.episode_set, dict):
            raise ValueError(f"{episode_set}: expected an object describing the test episodes (datamodules."
                             f"episode_set), got a {type(run.episode_set).__name__}")
    metrics_csv = path / "metrics.csv"
    if metrics_csv.is_file():
        for row in _read_csv(metrics_csv):
            if None in row:  # more cells than the header names
                raise ValueError(f"{metrics_csv}: a row has more cells than the header: {row[None]}")
            parsed = {k: _number(v) for k, v in row.items() if v not in ("", None)}
            run.metrics.append({k: v for k, v in parsed.items() if v is not None})
    gallery = path / "test_episode.png"
    run.gallery = gallery if gallery.is_file() else None
    return run


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.init_args.lr": 0.001, ...}``; lists of dicts index their items
    (``trainer.callbacks.0.class_path``) so configs can be compared key by key."""
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(config, list) and any(isinstance(v, dict) for v in config):
        out = {}
        for i, v in enumerate(config):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): config}
