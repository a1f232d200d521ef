"""Meta-RTL's source weights over meta-iterations, drawn when training ends: ``source_weights.png`` in the run
directory and, with a W&B logger, a W&B line plot (``source_weights``).

The module (``zoo.methods.meta_rtl.MetaRTL``) only records ``weight_history`` (``p^m`` per meta-iteration) and
``sources``; it attaches this callback itself (``configure_callbacks``), so every Meta-RTL run draws the picture
without a config naming it, and the method file holds no plotting or file writing.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from callbacks.run_dir import run_dir
from safefiles import atomic_path


def log_source_weights(trainer: Any, sources: list[str], history: list[list[float]]) -> None:
    """The source weights over meta-iterations as ``source_weights.png`` in the run directory and, with a W&B
    logger, as a W&B line plot (``source_weights``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if trainer.logger is None and trainer.checkpoint_callback is None:
        return  # a run that keeps nothing on disk (tests, sweeps) gets no picture either
    w = torch.tensor(history)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for j, name in enumerate(sources):
        ax.plot(range(1, len(w) + 1), w[:, j].numpy(), label=name)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("source weight")
    ax.legend(fontsize=7, ncol=2)
    out = run_dir(trainer)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "source_weights.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            xs = list(range(1, len(w) + 1))
            logger.experiment.log({"source_weights": wandb.plot.line_series(
                xs=xs, ys=w.T.tolist(), keys=sources, title="Meta-RTL source weights", xname="meta-iteration")})


class SourceWeightsPlot(pl.Callback):
    """Draw the module's ``weight_history`` against its ``sources`` once training ends (rank zero only)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "weight_history", None)
        if history and trainer.is_global_zero:
            log_source_weights(trainer, pl_module.sources, history)
