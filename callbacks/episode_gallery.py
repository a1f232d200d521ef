"""A picture of one test episode: support images per class, then queries framed green (right) or red (wrong).

Written as ``<run dir>/test_episode.png`` and, with a W&B logger, logged as ``test/episode`` media, so a person can
see what the numbers are about. Image episodes only; text or other inputs are skipped silently.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger

from callbacks.run_dir import run_dir
from datamodules.cache import atomic_path


def episode_figure(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, query_y: torch.Tensor,
                   pred: torch.Tensor, max_queries: int = 8):
    """A matplotlib figure: one row per class, its support images then up to ``max_queries`` of its queries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_way = int(support_y.max()) + 1
    k = int((support_y == 0).sum())
    cols = k + max_queries
    fig, axes = plt.subplots(n_way, cols, figsize=(cols * 0.9, n_way * 0.95), squeeze=False)

    def show(ax, img, colour=None):
        img = img.float()
        img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None)
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(colour is not None)
            if colour:
                spine.set_color(colour)
                spine.set_linewidth(2.5)

    for c in range(n_way):
        for j in range(cols):
            axes[c, j].axis("off")
        for j, img in enumerate(support_x[support_y == c][:k]):
            axes[c, j].axis("on")
            show(axes[c, j], img)
        for j, i in enumerate((query_y == c).nonzero().flatten()[:max_queries].tolist()):
            ax = axes[c, k + j]
            ax.axis("on")
            show(ax, query_x[i], "#2ca02c" if pred[i] == query_y[i] else "#d62728")
        axes[c, 0].set_ylabel(f"class {c}", fontsize=7)
    axes[0, 0].set_title("support", fontsize=7, loc="left")
    axes[0, k].set_title("queries (green: right, red: wrong)", fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    return fig


class EpisodeGallery(pl.Callback):
    """Draws the first test episode with the model's predictions (see module docstring).

    Args:
        max_queries: queries shown per class.
    """

    def __init__(self, max_queries: int = 8):
        self.max_queries = max_queries
        self._figure = None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or not trainer.is_global_zero or trainer.fast_dev_run \
                or not isinstance(batch.support_x, torch.Tensor) or batch.support_x.dim() != 4:
            return
        with torch.no_grad():
            pred = pl_module(batch).argmax(-1).cpu()
        self._figure = episode_figure(batch.support_x.cpu(), batch.support_y.cpu(), batch.query_x.cpu(),
                                      batch.query_y.cpu(), pred, self.max_queries)

    def on_test_end(self, trainer, pl_module) -> None:
        if self._figure is None:
            return
        import matplotlib.pyplot as plt

        out = run_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "test_episode.png") as tmp:
            self._figure.savefig(tmp, dpi=110, format="png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({"test/episode": wandb.Image(self._figure)})
        plt.close(self._figure)
        self._figure = None
