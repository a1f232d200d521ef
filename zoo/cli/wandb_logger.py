"""Weights & Biases logging that works with or without an account.

``mode="auto"`` (the default) logs online when credentials are configured and offline otherwise, so a first run on
a laptop never stops at a login prompt; ``wandb sync <save_dir>/wandb/offline-run-*`` uploads an offline run later.

Every logged metric is also written to ``metrics.csv`` in the run directory (beside ``checkpoints/``), the file
Lightning's CSVLogger writes: ``zoo report`` draws learning curves from it without reading W&B's binary run files.
"""

from __future__ import annotations

import netrc
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

Mode = Literal["auto", "online", "offline", "disabled"]


def wandb_credentials_configured() -> bool:
    """True if wandb could log in without asking: ``WANDB_API_KEY`` or an ``api.wandb.ai`` entry in the netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not path.is_file():
        return False
    try:
        hosts = netrc.netrc(str(path)).hosts
    except (netrc.NetrcParseError, OSError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
    return host in hosts


def resolve_wandb_mode(mode: Mode) -> str:
    """The mode wandb will run in: an explicit mode wins, then ``WANDB_MODE``, then the presence of credentials."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if wandb_credentials_configured() else "offline"


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger with an ``auto`` mode (see module docstring) and explicit, YAML-friendly arguments.

    Args:
        project, name, group, job_type, tags: as in ``wandb.init``; ``group`` gathers the seeds of one setting.
        save_dir: where runs (and offline runs to sync later) are written.
        mode: ``auto`` | ``online`` | ``offline`` | ``disabled``.
        log_model: upload checkpoints as artifacts (online only; ignored with a warning offline).
    """

    def __init__(self, project: str = "metazoo", name: str | None = None, save_dir: str = "runs",
                 group: str | None = None, job_type: str | None = None, tags: list[str] | None = None,
                 mode: Mode = "auto", log_model: bool | Literal["all"] = False):
        resolved = resolve_wandb_mode(mode)
        if log_model and resolved != "online":
            rank_zero_warn(f"WandbLogger: log_model={log_model!r} needs an online run (mode is {resolved!r}); "
                           "checkpoints stay on disk only.")
            log_model = False
        super().__init__(name=name, save_dir=save_dir, project=project, log_model=log_model, group=group,
                         job_type=job_type, tags=tags, mode=resolved)
        self.mode = resolved
        self._csv: CSVLogger | None = None
        self._run_dir: str | None = None  # a resumed run's directory name (callbacks.run_dir.continue_run)

    @property
    def version(self) -> str | None:
        """The run directory's name, ``<group>-<name>-<run id>`` (:func:`zoo.cli.runs.run_label`): ModelCheckpoint puts
        ``checkpoints/`` under ``<save_dir>/<project>/<version>``, so the directory, ``zoo compare`` and ``zoo
        report`` all show the name and group given to the run, not only W&B's opaque id. None before a run id
        exists. A resumed run keeps its directory's name whatever name this command gives."""
        from zoo.cli.runs import run_label

        run_id = super().version
        if self._run_dir is not None or run_id is None:
            return self._run_dir or run_id
        return run_label(self._wandb_init.get("group"), self._wandb_init.get("name"), run_id)

    @property
    def experiment(self) -> Any:
        """The W&B run; ``save_dir`` is created only now, when a run starts (wandb falls back to a temporary
        directory for a missing one), so a command that logs nothing (``fast_dev_run``) leaves no ``runs/``."""
        if self._experiment is None and self.save_dir:
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)
        return super().experiment

    @property
    def metrics_csv(self) -> CSVLogger:
        """The CSV mirror, in ``<save_dir>/<project>/<run id>``: the run directory ModelCheckpoint and
        ``callbacks.run_dir`` use, so ``metrics.csv`` sits beside ``config.yaml`` and ``checkpoints/``."""
        if self._csv is None:
            with warnings.catch_warnings():  # the run directory already holds config.yaml: that is the point
                warnings.filterwarnings("ignore", message="Experiment logs directory")
                self._csv = CSVLogger(self.save_dir, name=self.name, version=self.version)
                self._csv.experiment  # the writer is created (and checks the directory) on first access
        return self._csv

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        self.metrics_csv.log_metrics(metrics, step)

    @rank_zero_only
    def save(self) -> None:
        super().save()
        if self._csv is not None:
            self._csv.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._csv is not None:
            self._csv.finalize(status)
