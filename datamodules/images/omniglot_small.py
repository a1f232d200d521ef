"""Omniglot shipped with the package: the two minimal background sets for training and the 20 official one-shot runs.

Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through probabilistic program induction", Science
350 (2015), released Omniglot (github.com/brendenlake/omniglot, MIT licence) with two "minimal" background sets
(``images_background_small1/2``: 5 alphabets each) and the 20 runs of the one-shot classification task on which
the paper compares people (4.5 % error), Bayesian Program Learning (3.3 %), a deep Siamese convnet (8.0 %) and a
deep convnet (13.5 %). Those three zips and the licence ship in ``datamodules/images/data/omniglot/`` (package
data; ``README.md`` there gives their source commit and sha256), so :class:`OmniglotSmallDataModule` trains and tests with no
download. The zips are extracted once into the cache (:func:`safefiles.cached_build`, checked against the
sha256 they shipped with) and decoded by the :class:`~datamodules.images.OmniglotDataModule` reader's pipeline (invert,
28x28, rotations as new classes).

The small background sets: Greek and Latin are in both zips, byte-identical, so together they are 8 alphabets and
242 characters x 20 drawers. The models the paper compares learned from the full 30-alphabet background set (964
characters); these learn from 8.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from safefiles import ChecksumError, cached_build, data_root, sha256_file
from datamodules.episodes import EpisodeDataset
from datamodules.images.omniglot import OmniglotDataModule
from datamodules.images.source import ImageSource, SplitLists

#: The shipped files: name -> sha256 (the sha256 of github.com/brendenlake/omniglot at commit 057f034).
SHIPPED = {
    "images_background_small1.zip": "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "images_background_small2.zip": "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    "all_runs.zip": "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
}
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "omniglot"
RUNS, RUN_WAY = 20, 20
#: Error rates (%) on these 20 runs in Lake et al. (2015), Fig. 3 / main text; those models learned from the full
#: 30-alphabet background set.
PUBLISHED_ERROR = {"people": 4.5, "Bayesian Program Learning": 3.3, "deep Siamese convnet": 8.0, "deep convnet": 13.5}
CITATION = ("Omniglot one-shot runs (all_runs.zip) and minimal background sets of Lake, Salakhutdinov & Tenenbaum, "
            "Science 2015; github.com/brendenlake/omniglot, MIT licence")


def extract_shipped(source_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract the shipped zips once into ``<cache>/omniglot-small/<key>/`` and return that folder.

    Layout made: ``background/<alphabet>/<character>/*.png`` (both small sets merged; a file present in both must be
    byte-identical, which Greek and Latin are) and ``runs/runNN/{class_labels.txt,training/,test/}``. The zips are
    checked against :data:`SHIPPED` first, so a damaged install fails here, naming the file.
    """
    source_dir = Path(source_dir or SHIPPED_DIR)
    for name, digest in SHIPPED.items():
        path = source_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"OmniglotSmall: {path} is missing; it ships with the package "
                                    f"(datamodules/images/data/omniglot/); reinstall metazoo")
        if (actual := sha256_file(path)) != digest:
            raise ChecksumError(f"OmniglotSmall: {path} has sha256 {actual}, expected {digest} (the file shipped "
                                "from github.com/brendenlake/omniglot); reinstall metazoo")
    spec = {"dataset": "omniglot-small", "layout_version": 1, "zips": SHIPPED}

    def build(tmp: Path) -> None:
        for name in ("images_background_small1.zip", "images_background_small2.zip"):
            with zipfile.ZipFile(source_dir / name) as zf:
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if info.is_dir() or not parts[-1].endswith(".png"):
                        continue
                    target = tmp / "background" / Path(*parts[1:])  # drop images_background_smallN/
                    data = zf.read(info)
                    if target.exists():
                        if target.read_bytes() != data:
                            raise ValueError(f"OmniglotSmall: {name}:{info.filename} differs from the same character "
                                             "drawing in the other background set")
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
        with zipfile.ZipFile(source_dir / "all_runs.zip") as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    target = tmp / "runs" / info.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))

    base = Path(cache_dir) if cache_dir is not None else data_root()
    return cached_build(base / "omniglot-small" / "v1", spec, build)


def read_run_pairs(run_dir: Path) -> list[tuple[str, str]]:
    """``[(test file, training file)]`` of one run, in ``class_labels.txt`` order (paths relative to ``run_dir``).

    Each line of ``runNN/class_labels.txt`` is ``runNN/test/itemXX.png runNN/training/classYY.png``: the test item
    and the one training image of its class. A run pairs 20 distinct test items with 20 distinct training images.
    """
    path = run_dir / "class_labels.txt"
    if not path.is_file():
        raise FileNotFoundError(f"OmniglotRuns: {path} does not exist")
    prefix = run_dir.name + "/"
    pairs = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not all(f.startswith(prefix) for f in fields) or \
                not fields[0].startswith(prefix + "test/") or not fields[1].startswith(prefix + "training/"):
            raise ValueError(f"{path}:{line_no}: expected '{prefix}test/<item>.png {prefix}training/<class>.png', "
                             f"got {line!r}")
        pairs.append((fields[0][len(prefix):], fields[1][len(prefix):]))
    if len(pairs) != RUN_WAY or len({p[0] for p in pairs}) != RUN_WAY or len({p[1] for p in pairs}) != RUN_WAY:
        raise ValueError(f"{path}: expected {RUN_WAY} lines pairing {RUN_WAY} distinct test items with {RUN_WAY} "
                         f"distinct training images, got {len(pairs)} lines")
    return pairs


def runs_lists(runs_dir: Path) -> tuple[SplitLists, dict[int, str]]:
    """Files and labels of the 20 runs: class ``20 * r + j`` is training image ``j`` (sorted ``classNN`` order) of
    run ``r``; its two items are that training image, then the test item ``class_labels.txt`` pairs with it."""
    lists, names = SplitLists(), {}
    for r in range(RUNS):
        run_dir = runs_dir / f"run{r + 1:02d}"
        test_of = {train: test for test, train in read_run_pairs(run_dir)}
        for j, train in enumerate(sorted(test_of)):
            cid = RUN_WAY * r + j
            names[cid] = f"{run_dir.name}/{train}"
            lists.add(run_dir / train, cid)
            lists.add(run_dir / test_of[train], cid)
    return lists, names


class OmniglotRuns(EpisodeDataset):
    """The 20 one-shot runs of Lake et al. (2015) as 20 fixed 20-way 1-shot episodes of 20 queries.

    Episode ``r`` (0-based; ``(epoch, r)`` for any epoch) is run ``r + 1``: support = its 20 training images in
    ``classNN`` order (local label ``j`` = ``class{j+1:02d}``), queries = the 20 test items, query ``j`` being the one
    ``class_labels.txt`` pairs with support ``j``. One query per class, so an episode's accuracy is the share of
    the run's 20 test items classified right; the paper's score is the error rate over all 400 test items
    (:func:`runs_error_rate`), which is one minus the mean of the 20 per-episode accuracies.
    """

    def __init__(self, source: ImageSource, name: str = "OmniglotRuns"):
        super().__init__(source, RUN_WAY, 1, 1, seed=0, split="test", name=name)
        if len(self.class_ids) != RUNS * RUN_WAY or (self._counts != 2).any():
            raise ValueError(f"{name}: expected {RUNS * RUN_WAY} classes of 2 items (the 20 runs), got "
                             f"{len(self.class_ids)} classes")

    def draw(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < RUNS:
            raise IndexError(f"OmniglotRuns: episode {index} does not exist; the runs are episodes 0..{RUNS - 1}")
        classes = torch.arange(RUN_WAY * index, RUN_WAY * (index + 1))
        items = self._sorted[self._starts[classes, None] + torch.arange(2)]  # [20, 2]: training image, test item
        return torch.cat([items[:, 0], items[:, 1]]), classes


def runs_error_rate(run_accuracies: Sequence[float]) -> dict[str, float]:
    """The paper's score from the 20 per-run accuracies: error rate over the 400 test items (%; every run has 20,
    so it is the mean of the per-run error rates) and the 95% Student-t half-width over the 20 runs (each run an
    independently drawn task; with 20 of them the normal 1.96 would be too narrow)."""
    from zoo.training.metrics import mean_t_ci95

    if len(run_accuracies) != RUNS:
        raise ValueError(f"runs_error_rate: expected {RUNS} per-run accuracies, got {len(run_accuracies)}")
    mean, half = mean_t_ci95([1.0 - float(a) for a in run_accuracies])
    return {"error_rate": 100 * mean, "error_ci95": 100 * half, "runs": RUNS, "test_items": RUNS * RUN_WAY}


class OmniglotSmallDataModule(OmniglotDataModule):
    """Train on Omniglot's two minimal background sets, validate on held-out background alphabets, test on the 20
    official one-shot runs (:class:`OmniglotRuns`). Everything ships with the package; nothing is downloaded.

    Split (fixed): the 8 background alphabets in sorted name order are Balinese, Early_Aramaic, Greek,
    Japanese_(katakana), Korean, Latin, Sanskrit, Tagalog; the last ``val_alphabets`` (default 2: Sanskrit and
    Tagalog, 59 characters) are validation, the other 6 (183 characters) training. Whole alphabets, as
    :class:`OmniglotDataModule` does, because the runs' characters come from alphabets no background set contains.
    The test split is the runs, always 20-way 1-shot with one query per class and 20 episodes, whatever ``n_way`` /
    ``k_shot`` / ``q_query`` say (those set the validation episodes).

    ``rotations=True`` makes each training character at 0, 90, 180 and 270 degrees a class of its own (Vinyals et
    al. 2016; Snell et al. 2017 and Finn et al. 2017 train Omniglot so), 732 training classes. Validation stays
    upright: the runs are upright characters, and model selection should see what the test sees.

    Args:
        rotations: rotated training characters as new classes (above).
        val_alphabets: how many background alphabets (from the end of the sorted list) form validation.
        test_episodes: must be 20 (the runs); accepted so that configs and benchmarks can state it.
        **kwargs: image and episode arguments of :class:`~datamodules.images.base.ImageEpisodicDataModule`.
    """

    layout = "the shipped datamodules/images/data/omniglot/{images_background_small1,images_background_small2,all_runs}.zip"

    def __init__(self, rotations: bool = False, val_alphabets: int = 2, test_episodes: int = RUNS, **kwargs):
        if test_episodes != RUNS:
            raise ValueError(f"OmniglotSmall: the test split is the {RUNS} official one-shot runs; test_episodes "
                             f"must be {RUNS}, got {test_episodes}")
        super().__init__(root="", rotations=rotations, val_alphabets=val_alphabets, test_episodes=RUNS, **kwargs)

    def episode_setting(self, split: str) -> tuple[int, int, int]:
        return (RUN_WAY, 1, 1) if split == "test" else super().episode_setting(split)

    def build_sources(self) -> dict[str, ImageSource]:
        base = extract_shipped()
        background = base / "background"
        alphabets = sorted(p.name for p in background.iterdir() if p.is_dir())
        if len(alphabets) <= self.val_alphabets:
            raise ValueError(f"{self.name}: val_alphabets={self.val_alphabets} would leave none of the "
                             f"{len(alphabets)} background alphabets for training")
        cut = len(alphabets) - self.val_alphabets
        angles = (0, 90, 180, 270) if self.rotations else (0,)
        classes = {"train": [c for a in alphabets[:cut] for c in self.alphabet_classes(background, a, angles)],
                   "val": [c for a in alphabets[cut:] for c in self.alphabet_classes(background, a, (0,))]}
        lists, names = self.class_lists(classes)
        run_lists, run_names = runs_lists(base / "runs")
        offset = len(names)  # run classes after the background ones, so no id is shared across splits
        for f, label in zip(run_lists.files, run_lists.labels):
            lists.setdefault("test", SplitLists()).add(f, label + offset)
        names.update({cid + offset: name for cid, name in run_names.items()})
        return self.sources_from_lists(lists, names)

    def dataset(self, split: str) -> EpisodeDataset:
        if split != "test":
            return super().dataset(split)
        self.setup()
        return OmniglotRuns(self.sources["test"], name=self.name)

    def test_summary(self, run_accuracies: Sequence[float]) -> str:
        """The headline `zoo test` prints: the paper's score and the data it was measured on."""
        s = runs_error_rate(run_accuracies)
        return (f"Omniglot one-shot runs: error rate {s['error_rate']:.1f} % over {s['test_items']} test items "
                f"(95% CI +- {s['error_ci95']:.1f} over {s['runs']} runs); published on these runs: "
                + ", ".join(f"{k} {v} %" for k, v in PUBLISHED_ERROR.items())
                + f" (learned from the 30-alphabet background set). Data: {CITATION}")
