"""A picture of one test episode: support images per class, then queries framed green (right) or red (wrong).

Written as ``<run dir>/test_episode.png`` and, with a W&B logger, logged as ``test/episode`` media, so a person can
see what the numbers are about. Image episodes only; text or other inputs are skipped silently.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger

from callbacks.run_dir import run_dir
from safefiles import atomic_path


def episode_figure(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, query_y: torch.Tensor,
                   pred: torch.Tensor, max_queries: int | None = None, class_names: list[str] | None = None):
    """A matplotlib figure: one row per class, labelled ``<row number> <class name>``, its support images then its
    queries, each framed green (right) or red (wrong) and captioned with the row number it was predicted as
    (``-> 3``). Every query is shown unless ``max_queries`` (per class) is smaller; the title then says how many
    of how many are shown. ``class_names[c]`` names local label ``c`` (the dataset's own names, e.g. a glyph's
    Unicode name); without them the rows read ``class c``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_way = int(support_y.max()) + 1
    k = int((support_y == 0).sum())
    per_class = max(int((query_y == c).sum()) for c in range(n_way))
    shown = per_class if max_queries is None else min(per_class, max_queries)
    cols = k + max(shown, 1)
    fig, axes = plt.subplots(n_way, cols, figsize=(1.6 + cols * 0.8, n_way * 0.95), squeeze=False)

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

    def label(c: int) -> str:
        name = class_names[c] if class_names is not None else f"class {c}"
        return f"{c + 1} {name if len(name) <= 24 else name[:23] + '…'}"

    for c in range(n_way):
        for j in range(cols):
            axes[c, j].axis("off")
        for j, img in enumerate(support_x[support_y == c][:k]):
            axes[c, j].axis("on")
            show(axes[c, j], img)
        for j, i in enumerate((query_y == c).nonzero().flatten()[:shown].tolist()):
            ax = axes[c, k + j]
            ax.axis("on")
            right = pred[i] == query_y[i]
            show(ax, query_x[i], "#2ca02c" if right else "#d62728")
            ax.set_xlabel(f"-> {int(pred[i]) + 1}", fontsize=6, labelpad=1,
                          color="#2ca02c" if right else "#d62728")
        axes[c, 0].set_ylabel(label(c), fontsize=7, rotation=0, ha="right", va="center")
    n_query = int(query_y.numel())
    count = f"all {n_query} queries" if shown == per_class else f"{shown} of {per_class} queries per class shown"
    axes[0, 0].set_title("support", fontsize=7, loc="left")
    axes[0, k].set_title(f"{count} (green: right, red: wrong; -> the row predicted)", fontsize=7, loc="left")
    width = fig.get_figwidth()  # the first 1.6 inches hold the row labels (tight_layout cannot fit long ones)
    fig.subplots_adjust(left=1.6 / width, right=1 - 0.05 / width, bottom=0.08, top=0.9, wspace=0.15, hspace=0.35)
    return fig


def class_names(trainer: pl.Trainer, batch) -> list[str] | None:
    """The test split's names of an episode's classes (``batch.classes``: the dataset's class id of each local
    label; ``Source.class_names``), or None when the DataModule keeps no sources."""
    sources = getattr(trainer.datamodule, "sources", None) or {}
    source, classes = sources.get("test"), getattr(batch, "classes", None)
    if source is None or classes is None:
        return None
    names = getattr(source, "class_names", {})
    return [str(names.get(int(c), int(c))) for c in classes.flatten().tolist()]


class EpisodeGallery(pl.Callback):
    """Draws the first test episode with the model's predictions (see module docstring).

    Args:
        max_queries: queries shown per class; None (the default): all of them.
    """

    def __init__(self, max_queries: int | None = None):
        self.max_queries = max_queries
        self._figure = None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or not trainer.is_global_zero or trainer.fast_dev_run \
                or not isinstance(batch.support_x, torch.Tensor) or batch.support_x.dim() != 4:
            return
        with torch.no_grad():
            pred = pl_module(batch).argmax(-1).cpu()
        self._figure = episode_figure(batch.support_x.cpu(), batch.support_y.cpu(), batch.query_x.cpu(),
                                      batch.query_y.cpu(), pred, self.max_queries, class_names(trainer, batch))

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
