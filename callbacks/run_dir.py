"""Where a run writes its files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's own directory: the parent of its ``checkpoints/`` folder when it has a checkpoint callback
    (``runs/<project>/<group>-<name>-<run id>`` with W&B, ``runs/<name>/version_N`` with CSV), else the logger's ``log_dir``.

    Lightning's ``trainer.log_dir`` is not it with W&B (there it is the shared ``save_dir``), which is why
    configs, tables and predictions are placed with this function instead.
    """
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "dirpath", None):
        return Path(ckpt.dirpath).parent
    return Path(trainer.log_dir or trainer.default_root_dir)


def continue_run(trainer: pl.Trainer, ckpt_path: str | None) -> Path | None:
    """Point the trainer's logger at the run that ``ckpt_path`` belongs to, so a resumed fit continues it.

    Resuming from ``<run dir>/checkpoints/last.ckpt`` would otherwise open a new version directory (and a new W&B
    run), splitting one training's history in two. When the checkpoint sits where this logger keeps its runs
    (``<save_dir>/<name>/<run>/checkpoints/``), the logger takes ``<run>`` as its version (CSV, TensorBoard) or run
    id (W&B, resumed with ``resume="allow"``; the id is the last part of the directory's name,
    :func:`zoo.cli.runs.run_id_of`); otherwise a warning says the run continues in a new directory.
    Returns the run directory continued, or None. Must run before the logger starts its experiment.
    """
    from lightning.pytorch.loggers import CSVLogger, WandbLogger
    from lightning.pytorch.utilities import rank_zero_warn

    from safefiles import is_url

    if not ckpt_path or is_url(ckpt_path) or not trainer.loggers:
        return None
    path = Path(ckpt_path).expanduser()
    if path.parent.name != "checkpoints" or not path.is_file():
        return None
    run = path.parent.parent
    logger = trainer.loggers[0]  # the one ModelCheckpoint takes its directory from
    home = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name)
    if run.parent.resolve() != home.resolve():
        rank_zero_warn(f"resuming from {path}: it is not under this logger's runs ({home}), so the run continues in "
                       f"a new directory there")
        return None
    # The loggers take their version/id only as constructor arguments; these are the attributes they keep them in.
    if isinstance(logger, WandbLogger) and logger._experiment is None:
        from zoo.cli.runs import run_id_of

        logger._id = run_id_of(run.name)
        logger._wandb_init.update(id=logger._id, resume="allow")
        logger._run_dir = run.name  # zoo.WandbLogger: the same directory even if the name or group changed
    elif hasattr(logger, "_version") and not isinstance(logger, WandbLogger):
        logger._version = run.name
        if isinstance(logger, CSVLogger):
            _keep_csv_history(logger)
    else:
        rank_zero_warn(f"resuming from {path}: cannot point a {type(logger).__name__} at run {run.name}; the run "
                       f"continues in a new directory")
        return None
    return run


def _keep_csv_history(logger: Any) -> None:
    """Lightning's CSV writer deletes an existing ``metrics.csv`` when it opens a run directory; read the rows
    first and queue them ahead of the new ones, so the resumed run's file holds the whole history."""
    import csv

    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    logger.experiment.metrics[:0] = rows  # creating the writer removes the file; its rows are written back first


#: Files a run directory holds after a ``fit`` that did not finish: why, in one line (see :func:`mark_unfinished`).
FAILED_FILE, INTERRUPTED_FILE = "failed.txt", "interrupted.txt"


def mark_unfinished(trainer: pl.Trainer, error: BaseException) -> Path | None:
    """After a ``fit`` that raised ``error``: remove its run directory if the run wrote nothing into it, else write
    ``interrupted.txt`` (stopped by a signal: :class:`callbacks.Interruption` saved ``checkpoints/last.ckpt``) or
    ``failed.txt`` (any other error) there, so a partial directory is not taken for a finished run
    (:func:`zoo.cli.runs.load_run` reads the marker). Returns the marker written, or None.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from safefiles import atomic_write_text

    ckpt = trainer.checkpoint_callback
    if not trainer.is_global_zero or ckpt is None or not getattr(ckpt, "dirpath", None):
        return None  # only a run's own directory (the parent of its checkpoints/), never a shared log folder
    run = Path(ckpt.dirpath).parent
    if not run.is_dir():
        return None
    if not any(p.is_file() for p in run.rglob("*")):
        shutil.rmtree(run)  # only empty folders: nothing the run wrote is lost
        return None
    if isinstance(error, SIGTERMException):
        import signal

        name = signal.Signals(getattr(error, "signum", signal.SIGTERM)).name
        last = run / "checkpoints" / "last.ckpt"
        resume = f"continue with --ckpt_path {last}" if last.is_file() else "no checkpoint to continue from"
        marker, text = run / INTERRUPTED_FILE, (f"interrupted by {name} at epoch {trainer.current_epoch}, global step "
                                                f"{trainer.global_step}; {resume}\n")
    else:
        marker, text = run / FAILED_FILE, f"fit failed: {type(error).__name__}: {error}\n"
    atomic_write_text(marker, text)
    return marker


def clear_unfinished(trainer: pl.Trainer) -> None:
    """After a ``fit`` that finished (e.g. a resumed one): remove an earlier attempt's marker."""
    ckpt = trainer.checkpoint_callback
    if trainer.is_global_zero and ckpt is not None and getattr(ckpt, "dirpath", None):
        for name in (FAILED_FILE, INTERRUPTED_FILE):
            (Path(ckpt.dirpath).parent / name).unlink(missing_ok=True)
