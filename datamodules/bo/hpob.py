"""HPO-B (Pineda Arango et al., 2021): the search spaces as the official NAP code sets them up, the official JSON
files, and :class:`HPOBFunctionsDataModule` (GP-surrogate training tasks, real validation and test datasets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from datamodules.bo.base import FunctionDataModule
from datamodules.bo.gp_surrogate import HPOBSurrogateSampler
from datamodules.bo.tasks import (
    draw_initial_design,
    make_task,
)
from datamodules.episodes import episode_generator


@dataclass(frozen=True)
class HPOBSpace:
    """One HPO-B search space as the official NAP code sets it up (``nap/environment/hpo.py``).

    ``num_candidates`` is the training pool size (``points``); ``cont_dims`` are the continuous dims perturbed by the
    surrogate sampler; ``na_dims`` maps an NA-indicator dim to the continuous dim it flags (HPO-B imputes missing
    values with 0 and adds the indicator); ``excluded_train`` are meta-train dataset positions (in file order)
    the official code leaves out as degenerate.
    """

    name: str
    num_candidates: int
    cont_dims: tuple[int, ...]
    na_dims: dict[int, int] = field(default_factory=dict)
    excluded_train: tuple[int, ...] = ()


HPOB_SPACES: dict[str, HPOBSpace] = {
    "5860": HPOBSpace("glmnet", 100, (0, 1), {}, (6,)),
    "4796": HPOBSpace("rpart_preproc", 300, (0, 1, 2), {}, ()),
    "5906": HPOBSpace("xgboost", 50, tuple(range(9)), {9: 1, 10: 2, 11: 4, 12: 5, 13: 8}, ()),
    "5859": HPOBSpace("rpart", 200, (0, 1, 2, 3), {4: 0, 5: 3}, (0, 1, 5, 23, 24, 30, 47)),
    "5889": HPOBSpace("ranger", 50, (0, 1, 2), {3: 0}, ()),
    "5527": HPOBSpace("svm", 300, (0, 1, 2), {3: 1, 4: 2}, (0, 1)),
}
HPOB_NAMES = {s.name: sid for sid, s in HPOB_SPACES.items()}
HPOB_SEEDS = ("test0", "test1", "test2", "test3", "test4")
HPOB_FILES = {
    "train": ("meta-train-dataset-augmented.json", "meta-train-dataset.json"),
    "val": ("meta-validation-dataset.json",),
    "test": ("meta-test-dataset.json",),
    "init": ("bo-initializations.json",),
}

_JSON_CACHE: dict[tuple[str, int, int], Any] = {}


def _load_json(path: Path) -> Any:
    """Reads a JSON file once per process (the HPO-B meta-train file is hundreds of MB)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _JSON_CACHE:
        try:
            with open(path) as f:
                _JSON_CACHE[key] = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    return _JSON_CACHE[key]


def hpob_file(root: str | Path, part: str) -> Path:
    """The path of one HPO-B file (``part`` in train / val / test / init); the train split prefers the augmented
    file, as NAP does, and falls back to ``meta-train-dataset.json``."""
    root = Path(root)
    if part not in HPOB_FILES:
        raise ValueError(f"part must be one of {sorted(HPOB_FILES)}, got {part!r}")
    for name in HPOB_FILES[part]:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"HPO-B {part} file missing: looked for {' or '.join(HPOB_FILES[part])} in {root} "
                            f"(unzip the official hpob-data.zip there and pass that directory as data.root)")


def resolve_space(search_space: str | int) -> str:
    """A search-space id from an id or a NAP label (``"glmnet"`` -> ``"5860"``)."""
    s = str(search_space)
    return HPOB_NAMES.get(s, s)


def read_hpob(root: str | Path, split: str, search_space: str | int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{dataset_id: (X [n, D] float64, y [n] float64)}`` of one split and search space, in file order.

    The file format is ``{space: {dataset: {"X": [[...], ...], "y": [[v], ...]}}}`` (HPO-B README); every check
    names the file, space and dataset that fails it.
    """
    path = hpob_file(root, split)
    space = resolve_space(search_space)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{search_space: {{dataset: {{X, y}}}}}}")
    if space not in data:
        raise KeyError(f"{path}: search space {space!r} not found; the file has {sorted(data)[:20]}")
    if not isinstance(data[space], dict):
        raise ValueError(f"{path}: search space {space!r} must map dataset ids to {{X, y}} objects, got a "
                         f"{type(data[space]).__name__}")
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dim = None
    for ds, entry in data[space].items():
        where = f"{path} [space {space}, dataset {ds}]"
        if not isinstance(entry, dict) or "X" not in entry or "y" not in entry:
            raise ValueError(f"{where}: expected an object with 'X' and 'y'")
        try:
            x = torch.tensor(entry["X"], dtype=torch.float64)
            y = torch.tensor(entry["y"], dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: X must be a list of equal-length numeric rows and y a list of numbers "
                             f"or [number] ({err})") from None
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"{where}: X must be a non-empty [n, D] list of rows, got shape {tuple(x.shape)}")
        if y.numel() != x.shape[0]:
            raise ValueError(f"{where}: {x.shape[0]} rows in X but {y.numel()} values in y")
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError(f"{where}: X and y must be finite")
        if dim is not None and x.shape[1] != dim:
            raise ValueError(f"{where}: X has {x.shape[1]} columns, other datasets of the space have {dim}")
        dim = x.shape[1]
        out[str(ds)] = (x, y)
    if not out:
        raise ValueError(f"{path}: search space {space!r} has no datasets")
    return out


def read_bo_initializations(root: str | Path, search_space: str | int) -> dict[str, dict[str, list[int]]]:
    """``{dataset: {"test0": [5 row indices], ...}}`` from ``bo-initializations.json``."""
    path = hpob_file(root, "init")
    space = resolve_space(search_space)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{search_space: {{dataset: {{seed: [row indices]}}}}}}")
    if space not in data:
        raise KeyError(f"{path}: search space {space!r} not found; the file has {sorted(data)[:20]}")
    try:
        return {str(k): {str(s): [int(i) for i in v] for s, v in seeds.items()} for k, seeds in data[space].items()}
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: search space {space!r} must map each dataset to {{seed: [row indices]}} "
                         f"({type(err).__name__}: {err})") from None


class HPOBFunctionsDataModule(FunctionDataModule):
    """One HPO-B search space: GP-surrogate training tasks, real validation and test datasets.

    Training tasks: :class:`HPOBSurrogateSampler` over the meta-train datasets (round-robin from a random start
    per epoch). Validation: every meta-validation dataset x ``val_seeds`` initial designs drawn from the keyed
    generator. Test: every meta-test dataset x the official seeds ``test0``..``test4`` of
    ``bo-initializations.json``. Evaluation pools are whole datasets, y min-max normalised per dataset (as
    ``HPOBHandler.evaluate``). ``val_tasks``/``test_tasks`` are set by the files.

    Args:
        root: directory holding the unzipped official HPO-B files (your download).
        search_space: an id (``"5860"``) or NAP label (``"glmnet"``).
        num_candidates: training pool size; default the official ``points`` of the space (100 for glmnet...).
        perturbation: width of the uniform input noise of the surrogate sampler (official 0.1).
        cache_dir: directory where the fitted GPs are cached, one build per hash of the data (default
            ``<root>/nap-gps/<space>``).
        max_gp_points: optional cap on GP training rows (default: none, as upstream).
        exclude_train: meta-train positions to leave out; default the official list of the space.
        test_seeds: how many of ``test0``..``test4`` to use.
    """

    def __init__(self, root: str, search_space: str = "5860", num_candidates: int | None = None,
                 perturbation: float = 0.1, cache_dir: str | None = None, max_gp_points: int | None = None,
                 exclude_train: list[int] | None = None, train_tasks: int = 600, tasks_per_batch: int = 60,
                 val_seeds: int = 5, test_seeds: int = 5, train_n_init: int = 0, eval_n_init: int = 5,
                 eval_batch_size: int = 1, seed: int = 0, eval_seed: int | None = None, num_workers: int = 0):
        self.space_id = resolve_space(search_space)
        self.space = HPOB_SPACES.get(self.space_id)
        if num_candidates is None:
            if self.space is None:
                raise ValueError(f"search space {self.space_id!r} is not one of NAP's {sorted(HPOB_SPACES)}; "
                                 f"give num_candidates explicitly")
            num_candidates = self.space.num_candidates
        if not 1 <= test_seeds <= len(HPOB_SEEDS):
            raise ValueError(f"test_seeds must be in 1..{len(HPOB_SEEDS)}, got {test_seeds}")
        super().__init__(num_candidates=num_candidates, train_tasks=train_tasks, tasks_per_batch=tasks_per_batch,
                         val_tasks=1, val_seeds=val_seeds, test_tasks=1, test_seeds=test_seeds,
                         train_n_init=train_n_init, eval_n_init=eval_n_init, eval_batch_size=eval_batch_size,
                         seed=seed, eval_seed=eval_seed, num_workers=num_workers)
        self.root = Path(root)
        self.perturbation, self.max_gp_points = perturbation, max_gp_points
        self.exclude_train = exclude_train
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "nap-gps" / self.space_id
        self._data: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._inits: dict[str, dict[str, list[int]]] = {}
        self._sampler: HPOBSurrogateSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if not self._data:
            for split in ("val", "test"):
                self._data[split] = read_hpob(self.root, split, self.space_id)
            self._inits = read_bo_initializations(self.root, self.space_id)
            missing = [ds for ds in self._data["test"] if ds not in self._inits]
            if missing:
                raise KeyError(f"{hpob_file(self.root, 'init')}: no initial designs for test datasets {missing} "
                               f"of space {self.space_id}")
            for ds in self._data["test"]:
                for s in HPOB_SEEDS[: self.counts["test"][1]]:
                    if s not in self._inits[ds]:
                        raise KeyError(f"{hpob_file(self.root, 'init')}: space {self.space_id}, dataset {ds} has "
                                       f"no seed {s!r}")
            self.counts = {"val": (len(self._data["val"]), self.counts["val"][1]),
                           "test": (len(self._data["test"]), self.counts["test"][1])}
        dims = {v[0].shape[1] for split in self._data.values() for v in split.values()}
        if len(dims) != 1:
            raise ValueError(f"HPO-B space {self.space_id}: validation and test data disagree on the dimension "
                             f"({sorted(dims)})")

    @property
    def dim(self) -> int:
        self.setup()
        return int(next(iter(self._data["test"].values()))[0].shape[1])

    @property
    def sampler(self) -> HPOBSurrogateSampler:
        if self._sampler is None:
            train = read_hpob(self.root, "train", self.space_id)
            excluded = self.exclude_train if self.exclude_train is not None else (
                self.space.excluded_train if self.space else ())
            self._sampler = HPOBSurrogateSampler(train, self.space, self.cache_dir, self.perturbation,
                                                 self.max_gp_points, excluded)
        return self._sampler

    def task(self, split: str, epoch: int, index: int) -> dict[str, torch.Tensor]:
        self.setup()
        if split == "train":
            n = len(self.sampler.gps)
            start = int(torch.randint(0, n, (), generator=episode_generator(self.seed, "train/start", epoch, 0)))
            g = episode_generator(self.seed, "train", epoch, index)
            x, y = self.sampler.sample((start + index) % n, self.num_candidates, g)
            return make_task(x, y, draw_initial_design(len(x), self.train_n_init, g), index)
        names = list(self._data[split])
        seeds = self.counts[split][1]
        d, s = divmod(index, seeds)
        x, y = self._data[split][names[d]]
        if split == "test":
            init = torch.tensor(self._inits[names[d]][HPOB_SEEDS[s]][: self.eval_n_init])
            if init.numel() < self.eval_n_init or int(init.max()) >= len(x) or int(init.min()) < 0:
                raise ValueError(f"{hpob_file(self.root, 'init')}: space {self.space_id}, dataset {names[d]}, seed "
                                 f"{HPOB_SEEDS[s]}: need {self.eval_n_init} row indices in [0, {len(x)})")
        else:
            init = draw_initial_design(len(x), self.eval_n_init,
                                       episode_generator(self.split_seed("val"), "val/init", d, s))
        return make_task(x, y, init, index)

    def item_name(self, split: str, index: int) -> tuple[str, str]:
        """``(dataset id, seed name)`` of an evaluation item (for HPO-B results files)."""
        self.setup()
        d, s = divmod(index, self.counts[split][1])
        return list(self._data[split])[d], (HPOB_SEEDS[s] if split == "test" else f"val{s}")
