"""What SIGTERM and Ctrl+C (SIGINT) do to a ``zoo`` command: stop between batches, keep what can be resumed, and say so.

Lightning turns SIGTERM into a flag that ``fit``, ``validate`` and ``test`` check after each batch, then raise
``SIGTERMException`` (a ``SystemExit`` *without a code*: the process exited 0, so schedulers, CI and ``fit && publish``
chains read a killed run as a success), and ``predict`` never checks it (a long predict stopped only with SIGKILL).
:class:`Interruption`, which the ``zoo`` command adds to every trainer:

* treats the first Ctrl+C like SIGTERM (stop after the current batch, so the weights are never caught half-updated
  by an optimiser step); a second Ctrl+C stops at once (Lightning's KeyboardInterrupt handling);
* stops ``predict`` between batches (the prediction writer then drops its partial file);
* on a stopped ``fit``, saves the full training state (weights, optimiser, loops, callbacks) to
  ``<run dir>/checkpoints/last.ckpt``, from which ``zoo fit ... --ckpt_path <that file>`` continues the same run;
* records the signal on the exception, so that :func:`zoo.cli.commands.main` exits ``128 + signal``: 143 for SIGTERM, 130 for
  SIGINT, as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


def exit_code(stop: BaseException) -> int:
    """The exit status for a run stopped by a signal: ``128 + signum`` (143 SIGTERM, 130 SIGINT)."""
    return 128 + int(getattr(stop, "signum", signal.SIGTERM))


class Interruption(pl.Callback):
    """Stops a run between batches on SIGTERM or a first Ctrl+C and saves a resumable checkpoint of a ``fit``
    (module docstring). ``checkpoint`` is the file name written in the run's ``checkpoints/`` folder."""

    def __init__(self, checkpoint: str = "last.ckpt"):
        self.checkpoint = checkpoint
        self.signum: int | None = None
        self.saved: Path | None = None
        self._previous_sigint: Any = None

    # -- the first Ctrl+C becomes a stop at the next batch boundary ----------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.signum, self.saved = None, None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous_sigint = signal.signal(signal.SIGINT, lambda signum, frame: self._sigint(trainer))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def _sigint(self, trainer: pl.Trainer) -> None:
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl+C: stop now
        self.signum = signal.SIGINT
        # The flag Lightning's own SIGTERM handler sets; its loops check it after every batch.
        trainer._signal_connector.received_sigterm = True
        print("\nCtrl+C: stopping after the current batch (press it again to stop at once)", file=sys.stderr,
              flush=True)

    # -- predict: Lightning's predict loop does not check the flag ---------------------------------------------
    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.received_sigterm:
            raise SIGTERMException

    # -- a stopped fit keeps its state ---------------------------------------------------------------------------
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        exception.signum = self.signum or signal.SIGTERM
        name = signal.Signals(exception.signum).name
        ckpt = trainer.checkpoint_callback
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.fast_dev_run or ckpt is None \
                or not getattr(ckpt, "dirpath", None):
            rank_zero_info(f"{name}: {trainer.state.fn} stopped; nothing to resume")
            return
        target = Path(ckpt.dirpath) / self.checkpoint
        if target.is_symlink():  # ModelCheckpoint(save_last="link") points last.ckpt at another checkpoint
            target.unlink()
        trainer.save_checkpoint(target)
        self.saved = target
        rank_zero_info(f"{name}: fit stopped at epoch {trainer.current_epoch}, global step {trainer.global_step}; "
                       f"saved {target}. Continue with: zoo fit <the same options> --ckpt_path {target}")
