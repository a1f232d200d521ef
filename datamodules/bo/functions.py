"""Black-box optimisation tasks for meta-BO (NAP): task families, the HPO-B reader and their DataModules.

A *task* is a function over a finite candidate pool in ``[0, 1]^D``: ``x`` ``[N, D]``, ``y`` ``[N]`` min-max
normalised over the pool (so the optimum is 1 and the worst point 0; values are *maximised*), plus the indices of
an initial design. Three kinds of family:

* :class:`GPPriorFamily`: samples of a GP prior (RBF or Matern-5/2, random lengthscale) on a random pool;
* :class:`TestFunctionFamily`: a BoTorch test function (Branin, Hartmann-3/6, Ackley, Levy, ...) under a random
  shift, scaling and rotation of its input, so one family holds many related tasks;
* HPO-B (Pineda Arango et al., 2021): meta-train / validation / test datasets read from the official JSON files.
  Training tasks come from the GP-surrogate sampler of the official NAP code (one GP per meta-train dataset,
  perturbed inputs, posterior samples); validation and test tasks are the real datasets, test ones from the
  official ``bo-initializations.json`` seeds ``test0``..``test4``.

Every task is a pure function of ``(seed, split, epoch, index)`` through the same keyed generator as the episode
sampler (:func:`datamodules.episodes.episode_generator`); validation and test use epoch 0, so they are fixed sets.
Splits are disjoint: synthetic splits draw from unrelated generator streams (a continuous distribution, so two
splits share a task with probability 0), HPO-B splits are its disjoint meta-dataset files. Under DDP the
:class:`~datamodules.episodes.EpisodeSampler` stripes task indices over ranks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import SeededDataModule
from datamodules.cache import cached_build, spec_key
from datamodules.episodes import SPLITS, episode_generator
from datamodules.progress import Progress

# ----------------------------------------------------------------------------------------------------------------
# Tasks and batches
# ----------------------------------------------------------------------------------------------------------------


def minmax_normalise(y: torch.Tensor, name: str = "y") -> torch.Tensor:
    """``(y - min) / (max - min)``; a constant ``y`` has no optimum to find and is an error."""
    if not torch.isfinite(y).all():
        raise ValueError(f"{name} has non-finite values")
    lo, hi = y.min(), y.max()
    if not hi > lo:
        raise ValueError(f"{name} is constant ({float(lo)}): min-max normalisation needs a spread")
    return (y - lo) / (hi - lo)


def make_task(x: torch.Tensor, y: torch.Tensor, init: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
    """The task dict every sampler returns (``y`` normalised here)."""
    return {"x": x.float(), "y": minmax_normalise(y.double()).float(), "init": init.long(),
            "index": torch.tensor(index, dtype=torch.long)}


def collate_tasks(tasks: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stacks tasks into a batch, padding candidate pools of different sizes; ``valid`` marks real candidates."""
    if not tasks:
        raise ValueError("collate_tasks needs at least one task")
    dims = {int(t["x"].shape[1]) for t in tasks}
    if len(dims) > 1:
        raise ValueError(f"tasks of one batch must share the input dimension, got {sorted(dims)}")
    n_max = max(int(t["x"].shape[0]) for t in tasks)
    n_init = {int(t["init"].numel()) for t in tasks}
    if len(n_init) > 1:
        raise ValueError(f"tasks of one batch must share the initial-design size, got {sorted(n_init)}")
    bsz, d = len(tasks), dims.pop()
    x = torch.zeros(bsz, n_max, d)
    y = torch.zeros(bsz, n_max)
    valid = torch.zeros(bsz, n_max, dtype=torch.bool)
    for i, t in enumerate(tasks):
        n = t["x"].shape[0]
        x[i, :n], y[i, :n], valid[i, :n] = t["x"], t["y"], True
    return {"x": x, "y": y, "valid": valid, "init": torch.stack([t["init"] for t in tasks]),
            "index": torch.stack([t["index"] for t in tasks])}


def draw_initial_design(n: int, n_init: int, g: torch.Generator) -> torch.Tensor:
    """``n_init`` distinct candidate indices out of ``n``, uniformly."""
    if n_init > n:
        raise ValueError(f"an initial design of {n_init} points needs at least that many candidates, got {n}")
    return torch.randperm(n, generator=g)[:n_init]


# ----------------------------------------------------------------------------------------------------------------
# Synthetic families
# ----------------------------------------------------------------------------------------------------------------
class TaskFamily:
    """A distribution over functions on ``[0, 1]^dim``; ``sample`` draws one task's pool and its values."""

    dim: int

    def sample(self, num_candidates: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [N, dim], y [N])``, raw (not yet normalised), drawn with ``g`` only."""
        raise NotImplementedError


def kernel_matrix(x: torch.Tensor, lengthscale: float, kernel: str) -> torch.Tensor:
    """Unit-variance stationary kernel on the rows of ``x``: ``"rbf"`` or ``"matern52"``."""
    r = torch.cdist(x, x) / lengthscale
    if kernel == "rbf":
        return torch.exp(-0.5 * r ** 2)
    if kernel == "matern52":
        s5 = math.sqrt(5.0) * r
        return (1 + s5 + s5 ** 2 / 3) * torch.exp(-s5)
    raise ValueError(f"kernel must be 'rbf' or 'matern52', got {kernel!r}")


@dataclass
class GPPriorFamily(TaskFamily):
    """Samples of a zero-mean GP prior on a uniformly random pool, lengthscale ~ U(low, high) per task.

    The official code samples GP functions with a 500-feature sparse-spectrum approximation on a fixed Sobol grid
    (``f_type="GP"``); on a finite pool the exact sample (a Cholesky factor of the pool's kernel matrix) costs
    little and has no approximation error, and a new random pool per task also varies the domain.
    """

    dim: int = 4
    lengthscale_low: float = 0.1
    lengthscale_high: float = 0.4
    kernel: str = "rbf"
    jitter: float = 1e-6

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if not 0 < self.lengthscale_low <= self.lengthscale_high:
            raise ValueError(f"need 0 < lengthscale_low <= lengthscale_high, got {self.lengthscale_low}, "
                             f"{self.lengthscale_high}")
        kernel_matrix(torch.zeros(1, 1), 1.0, self.kernel)  # validates the name

    def sample(self, num_candidates: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(num_candidates, self.dim, generator=g, dtype=torch.float64)
        ls = self.lengthscale_low + (self.lengthscale_high - self.lengthscale_low) * float(
            torch.rand((), generator=g, dtype=torch.float64))
        k = kernel_matrix(x, ls, self.kernel) + self.jitter * torch.eye(num_candidates, dtype=torch.float64)
        chol = torch.linalg.cholesky(k)
        y = chol @ torch.randn(num_candidates, generator=g, dtype=torch.float64)
        return x, y


def _botorch_function(name: str, dim: int | None, margin: float = 0.0):
    """A BoTorch test function by name, with its nominal box ``[lb, ub]`` widened by ``margin * (ub - lb)`` on
    each side so that transformed points just outside the box are evaluated, not rejected (the functions are
    analytic there). Returns ``(function, nominal bounds [2, D])``. BoTorch is imported lazily (``bo`` extra)."""
    from botorch.test_functions import synthetic as s

    fixed = {"branin": (s.Branin, 2), "hartmann3": (s.Hartmann, 3), "hartmann4": (s.Hartmann, 4),
             "hartmann6": (s.Hartmann, 6), "six_hump_camel": (s.SixHumpCamel, 2), "eggholder": (s.EggHolder, 2),
             "drop_wave": (s.DropWave, 2), "holder_table": (s.HolderTable, 2)}
    variable = {"ackley": s.Ackley, "levy": s.Levy, "rastrigin": s.Rastrigin, "rosenbrock": s.Rosenbrock,
                "styblinski_tang": s.StyblinskiTang, "griewank": s.Griewank, "michalewicz": s.Michalewicz,
                "dixon_price": s.DixonPrice, "powell": s.Powell}
    if name in fixed:
        cls, d = fixed[name]
        if dim is not None and dim != d:
            raise ValueError(f"test function {name!r} is {d}-dimensional, got dim={dim}")
        kwargs = {"dim": d} if cls is s.Hartmann else {}
    elif name in variable:
        if dim is None:
            raise ValueError(f"test function {name!r} needs a dim")
        cls, kwargs = variable[name], {"dim": dim}
    else:
        raise ValueError(f"unknown test function {name!r}; known: {sorted(fixed) + sorted(variable)}")
    try:
        nominal = cls(**kwargs).bounds.clone()
    except (ValueError, AssertionError) as err:
        raise ValueError(f"test function {name!r}: {err}") from None
    width = nominal[1] - nominal[0]
    wide = [(float(lo - margin * w), float(hi + margin * w)) for lo, hi, w in zip(nominal[0], nominal[1], width)]
    return cls(bounds=wide, **kwargs), nominal


def random_rotation(dim: int, max_angle: float, g: torch.Generator) -> torch.Tensor:
    """``exp(A)`` for a skew-symmetric ``A`` with entries ``U(-max_angle, max_angle)``: a rotation close to the
    identity when ``max_angle`` is small, so rotated tasks stay related."""
    a = (2 * torch.rand(dim, dim, generator=g, dtype=torch.float64) - 1) * max_angle
    a = torch.triu(a, 1)
    return torch.linalg.matrix_exp(a - a.T)


@dataclass
class TestFunctionFamily(TaskFamily):
    """A BoTorch test function under a random affine map of its input, negated so that larger is better.

    A task draws a shift ``t ~ U(-shift, shift)^D``, a scale ``s ~ U(1 - scale, 1 + scale)`` and a rotation ``R``
    (:func:`random_rotation`) and evaluates ``-f(lb + (ub - lb) * u)`` with
    ``u = c + R s (x - c) + t``, ``c = (0.5, ..., 0.5)``, on a uniformly random pool ``x`` in ``[0, 1]^D``.
    This is the ``bound_translation`` / ``bound_scaling`` family of the official code (Ackley, Powell, ...) with a
    rotation added, as the issue asks. Points mapped outside the function's nominal box are still evaluated (the
    functions are analytic there).
    """

    function: str = "hartmann3"
    dim: int | None = None
    shift: float = 0.1
    scale: float = 0.1
    rotation: float = 0.1

    def __post_init__(self) -> None:
        for arg in ("shift", "scale", "rotation"):
            if getattr(self, arg) < 0:
                raise ValueError(f"{arg} must be >= 0, got {getattr(self, arg)}")
        if self.scale >= 1:
            raise ValueError(f"scale must be < 1 (s ~ U(1 - scale, 1 + scale) must stay positive), got {self.scale}")
        _, nominal = _botorch_function(self.function, self.dim)
        d = nominal.shape[1]
        # |R s (x - c)|_inf <= (1 + scale) sqrt(D) / 2 and |t|_inf <= shift: u stays within this margin of [0, 1]
        margin = max(0.0, (1 + self.scale) * math.sqrt(d) / 2 + self.shift - 0.5) + 1e-6
        self._f, self._bounds = _botorch_function(self.function, self.dim, margin)
        self.dim = int(d)

    def transform(self, g: torch.Generator) -> tuple[torch.Tensor, float, torch.Tensor]:
        t = (2 * torch.rand(self.dim, generator=g, dtype=torch.float64) - 1) * self.shift
        s = 1 + (2 * float(torch.rand((), generator=g, dtype=torch.float64)) - 1) * self.scale
        r = random_rotation(self.dim, self.rotation, g) if self.dim > 1 else torch.ones(1, 1, dtype=torch.float64)
        return t, s, r

    def evaluate(self, x: torch.Tensor, t: torch.Tensor, s: float, r: torch.Tensor) -> torch.Tensor:
        u = 0.5 + (s * (x.double() - 0.5)) @ r.T + t
        lb, ub = self._bounds[0], self._bounds[1]
        return -self._f.evaluate_true(lb + (ub - lb) * u)

    def sample(self, num_candidates: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t, s, r = self.transform(g)
        x = torch.rand(num_candidates, self.dim, generator=g, dtype=torch.float64)
        return x, self.evaluate(x, t, s, r)


# ----------------------------------------------------------------------------------------------------------------
# HPO-B files
# ----------------------------------------------------------------------------------------------------------------
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


def select_gp_rows(y: torch.Tensor) -> torch.Tensor:
    """Rows the official sampler fits its GP on: score ``y / count(y)``, keep the top ``3 |unique(y)|``.

    HPO-B datasets repeat the same accuracy many times (failed or saturated runs); dividing by the count keeps
    few copies of each value and favours good ones (``create_task_datasets.py``). Ties keep file order.
    """
    uniq, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    score = y / counts[inverse]
    order = torch.sort(score, descending=True, stable=True).indices
    return order[: 3 * uniq.numel()]


def _single_task_gp(train_x: torch.Tensor, train_y: torch.Tensor):
    from botorch.models import SingleTaskGP

    # y is standardised by hand, as upstream (botorch 0.8 had no default outcome transform)
    return SingleTaskGP(train_x, train_y.unsqueeze(-1), outcome_transform=None)


def fit_dataset_gp(x: torch.Tensor, y: torch.Tensor, max_points: int | None = None, seed: int = 0
                   ) -> dict[str, torch.Tensor] | None:
    """Fits the official surrogate of one meta-train dataset: a ``SingleTaskGP`` (BoTorch's default kernel) on
    the :func:`select_gp_rows` rows with standardised y, by ``fit_gpytorch_mll``.

    Returns the GP's tensors (``train_x``, ``train_y`` and ``param/<name>`` state-dict entries), or ``None`` for
    the datasets the official script skips (std(y) < 1e-3) or whose fit fails. ``max_points`` optionally keeps
    only the best-scored rows ([INTERP] a cost cap, off by default; upstream falls back to a GPU fit instead).
    """
    from botorch import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    if not torch.isfinite(y).all() or float(y.std()) < 1e-3:
        return None
    rows = select_gp_rows(y)
    if max_points is not None:
        rows = rows[:max_points]
    rows = torch.sort(rows).values
    xs, ys = x[rows].double(), y[rows].double()
    ys = (ys - ys.mean()) / ys.std()
    if not torch.isfinite(ys).all():
        return None
    with torch.random.fork_rng():  # BoTorch re-samples initial values from the global RNG when a fit fails
        torch.manual_seed(seed)
        gp = _single_task_gp(xs, ys)
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        except Exception:  # noqa: BLE001 - botorch raises several error types for a failed fit; skipped as upstream
            return None
    out = {"train_x": xs.contiguous(), "train_y": ys.contiguous()}
    out.update({f"param/{k}": v.detach().clone().contiguous() for k, v in gp.state_dict().items()})
    return out


def load_dataset_gp(tensors: dict[str, torch.Tensor]):
    """Rebuilds a fitted GP from :func:`fit_dataset_gp`'s tensors, in eval mode."""
    gp = _single_task_gp(tensors["train_x"], tensors["train_y"])
    gp.load_state_dict({k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")})
    return gp.eval()


HPOB_GP_FILE = "gps.safetensors"  # in each build directory of HPOBSurrogateSampler's cache


class HPOBSurrogateSampler:
    """The official GP-surrogate task sampler of one search space (``f_type="condHPO"`` in ``function_gym_nap``).

    Fits one GP per meta-train dataset (cached by :func:`datamodules.cache.cached_build` in
    ``<cache_dir>/<hash of the data>/gps.safetensors``, so the fits run once), then each task: picks a dataset
    round-robin, draws ``num_candidates`` of that GP's training inputs with replacement, adds
    ``U(-width/2, width/2)`` noise (official width 0.1) to the continuous dims and min-max re-normalises them,
    re-zeroes the continuous dims whose NA indicator is set, and draws ``y`` from the GP's posterior predictive
    (observation noise included) at those inputs.
    """

    def __init__(self, datasets: dict[str, tuple[torch.Tensor, torch.Tensor]], space: HPOBSpace | None,
                 cache_dir: Path | None, perturbation: float = 0.1, max_gp_points: int | None = None,
                 excluded: Sequence[int] = ()):
        self.perturbation = perturbation
        dim = next(iter(datasets.values()))[0].shape[1]
        self.cont_dims = list(space.cont_dims) if space is not None else list(range(dim))
        self.na_dims = dict(space.na_dims) if space is not None else {}
        bad = [d for d in self.cont_dims + list(self.na_dims) + list(self.na_dims.values()) if not 0 <= d < dim]
        if bad:
            raise ValueError(f"search space {space.name if space else '?'}: dims {bad} do not exist in data of "
                             f"dimension {dim}")
        names = [k for i, k in enumerate(datasets) if i not in set(excluded)]
        digest = hashlib.sha256()
        for k in names:
            x, y = datasets[k]
            digest.update(k.encode()), digest.update(x.numpy().tobytes()), digest.update(y.numpy().tobytes())
        digest.update(str(max_gp_points).encode())
        spec = {"hpob_gps_data_sha256": digest.hexdigest()}

        def fit() -> tuple[list[str], list[dict[str, torch.Tensor]]]:
            fitted = {}
            with Progress(f"HPO-B: fitting {len(names)} surrogate GPs", len(names), "GPs") as bar:
                for k in names:
                    fitted[k] = fit_dataset_gp(*datasets[k], max_points=max_gp_points)
                    bar.update()
            fitted = {k: v for k, v in fitted.items() if v is not None}
            if not fitted:
                raise ValueError("HPO-B surrogate sampler: no meta-train dataset could be fitted (all have "
                                 "std(y) < 1e-3 or failed)")
            return list(fitted), list(fitted.values())

        def build(out: Path) -> None:
            from safetensors.torch import save_file

            fitted_names, gps = fit()
            flat = {f"{i}/{k}": v for i, g in enumerate(gps) for k, v in g.items()}
            save_file(flat, str(out / HPOB_GP_FILE), metadata={"datasets": json.dumps(fitted_names)})

        if cache_dir is None:
            self.names, self.gps = fit()
        else:
            directory = cached_build(Path(cache_dir) / spec_key(spec), spec, build)
            self.names, self.gps = self._read_cache(directory / HPOB_GP_FILE)
        self._models: dict[int, Any] = {}

    @staticmethod
    def _read_cache(path: Path) -> tuple[list[str], list[dict[str, torch.Tensor]]]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            names = json.loads(f.metadata()["datasets"])
            gps: list[dict[str, torch.Tensor]] = [{} for _ in names]
            for k in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                i, rest = k.split("/", 1)
                gps[int(i)][rest] = f.get_tensor(k)
        return names, gps

    def model(self, i: int):
        if i not in self._models:
            self._models[i] = load_dataset_gp(self.gps[i])
        return self._models[i]

    def sample(self, dataset: int, num_candidates: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        from linear_operator.utils.cholesky import psd_safe_cholesky

        tensors = self.gps[dataset]
        base = tensors["train_x"]
        rows = torch.randint(0, base.shape[0], (num_candidates,), generator=g)
        x = base[rows].clone()
        if self.cont_dims:
            c = x[:, self.cont_dims]
            c = c + torch.rand(c.shape, generator=g, dtype=c.dtype) * self.perturbation - self.perturbation / 2
            lo, hi = c.min(0).values, c.max(0).values
            rng = torch.where(hi - lo == 0, torch.ones_like(hi), hi - lo)
            x[:, self.cont_dims] = (c - lo) / rng
        for na, cont in self.na_dims.items():
            x[:, cont] = torch.where(x[:, na] == 1.0, torch.zeros_like(x[:, cont]), x[:, cont])
        with torch.no_grad():
            post = self.model(dataset).posterior(x, observation_noise=True)
            mean = post.mean.reshape(-1)
            cov = post.distribution.covariance_matrix
            chol = psd_safe_cholesky(cov)
        y = mean + chol @ torch.randn(num_candidates, generator=g, dtype=mean.dtype)
        return x, y


# ----------------------------------------------------------------------------------------------------------------
# Datasets and DataModules
# ----------------------------------------------------------------------------------------------------------------
class TaskDataset(Dataset):
    """Map-style dataset whose item ``(epoch, index)`` is one task; ``make`` is a pure function of the key."""

    def __init__(self, make, split: str):
        self.make, self.split = make, split

    def __len__(self) -> int:  # the sampler decides how many tasks an epoch has
        raise TypeError("TaskDataset is indexed by (epoch, index) keys from EpisodeSampler")

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        return self.make(self.split, epoch, index)


class FunctionDataModule(SeededDataModule):
    """Tasks for meta-BO: ``train_tasks`` new tasks per epoch, fixed validation and test sets.

    A training batch of ``tasks_per_batch`` tasks is one PPO iteration of :class:`zoo.nap.NAPModule` (official: 60
    episodes). Evaluation items are ``(function, initial design)`` pairs: ``val_tasks`` functions x ``val_seeds``
    designs and ``test_tasks`` x ``test_seeds`` (HPO-B style: every method sees the same functions from the same
    ``eval_n_init`` initial points, and several designs per function give the "seeds").

    Args:
        num_candidates: pool size of training tasks.
        eval_num_candidates: pool size of validation/test tasks (defaults to ``num_candidates``).
        train_tasks: training tasks per epoch.
        tasks_per_batch: tasks per training batch.
        val_tasks, val_seeds, test_tasks, test_seeds: sizes of the fixed evaluation sets.
        train_n_init: initial random points of training episodes (official 0).
        eval_n_init: initial points of evaluation episodes (HPO-B: 5).
        eval_batch_size: evaluation tasks per batch.
        seed, eval_seed, num_workers: see :class:`~datamodules.base.SeededDataModule` (the items are tasks).
    """

    def __init__(self, num_candidates: int = 256, eval_num_candidates: int | None = None, train_tasks: int = 600,
                 tasks_per_batch: int = 60, val_tasks: int = 32, val_seeds: int = 1, test_tasks: int = 20,
                 test_seeds: int = 5, train_n_init: int = 0, eval_n_init: int = 5, eval_batch_size: int = 16,
                 seed: int = 0, eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(seed, eval_seed, num_workers)
        for arg, v in (("num_candidates", num_candidates), ("train_tasks", train_tasks),
                       ("tasks_per_batch", tasks_per_batch), ("val_tasks", val_tasks), ("val_seeds", val_seeds),
                       ("test_tasks", test_tasks), ("test_seeds", test_seeds), ("eval_batch_size", eval_batch_size)):
            if int(v) < 1:
                raise ValueError(f"{arg} must be >= 1, got {v}")
        if train_n_init < 0 or eval_n_init < 0:
            raise ValueError(f"train_n_init and eval_n_init must be >= 0, got {train_n_init}, {eval_n_init}")
        self.num_candidates = num_candidates
        self.eval_num_candidates = eval_num_candidates or num_candidates
        self.train_tasks, self.tasks_per_batch = train_tasks, tasks_per_batch
        self.counts = {"val": (val_tasks, val_seeds), "test": (test_tasks, test_seeds)}
        self.train_n_init, self.eval_n_init = train_n_init, eval_n_init
        self.eval_batch_size = eval_batch_size

    def setup(self, stage: str | None = None) -> None:
        """Nothing to load for synthetic families; file-backed families read their files here."""

    # -- what a family provides ----------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def task(self, split: str, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """Task ``index`` of ``split``: a pure function of ``(seed, split, epoch, index)``."""
        raise NotImplementedError

    def num_items(self, split: str) -> int:
        """Number of items per epoch of ``split``."""
        if split == "train":
            return self.train_tasks
        n, s = self.counts[split]
        return n * s

    # -- shared machinery ----------------------------------------------------------------------------------------
    def loader(self, split: str) -> DataLoader:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.setup("fit" if split == "train" else split)
        bs = self.tasks_per_batch if split == "train" else self.eval_batch_size
        return self.striped_loader(TaskDataset(self.task, split), split, self.num_items(split), batch_size=bs,
                                   collate_fn=collate_tasks)

    def fixed_tasks(self, split: str) -> list[dict[str, torch.Tensor]]:
        """All items of an evaluation split (as the loaders give them on one process), for scripts."""
        self.setup(split)
        return [self.task(split, 0, i) for i in range(self.num_items(split))]


class SyntheticFunctions(FunctionDataModule):
    """Tasks of a synthetic :class:`TaskFamily`; evaluation item ``i`` is function ``i // seeds``, design
    ``i % seeds``, so the designs of one function share its pool and values."""

    family: TaskFamily

    @property
    def dim(self) -> int:
        return int(self.family.dim)

    def task(self, split: str, epoch: int, index: int) -> dict[str, torch.Tensor]:
        if split == "train":
            g = episode_generator(self.seed, "train", epoch, index)
            x, y = self.family.sample(self.num_candidates, g)
            return make_task(x, y, draw_initial_design(len(x), self.train_n_init, g), index)
        seeds = self.counts[split][1]
        f, s = divmod(index, seeds)
        g = episode_generator(self.split_seed(split), split, 0, f)
        x, y = self.family.sample(self.eval_num_candidates, g)
        init = draw_initial_design(len(x), self.eval_n_init,
                                   episode_generator(self.split_seed(split), f"{split}/init", f, s))
        return make_task(x, y, init, index)


class GPPriorFunctions(SyntheticFunctions):
    """Samples of a GP prior (:class:`GPPriorFamily`); see :class:`FunctionDataModule` for the shared args.

    Args:
        dim: input dimension.
        lengthscale_low, lengthscale_high: range of the per-task isotropic lengthscale.
        kernel: ``"rbf"`` or ``"matern52"``.
    """

    def __init__(self, dim: int = 4, lengthscale_low: float = 0.1, lengthscale_high: float = 0.4,
                 kernel: str = "rbf", **kwargs: Any):
        super().__init__(**kwargs)
        self.family = GPPriorFamily(dim, lengthscale_low, lengthscale_high, kernel)


class TestFunctions(SyntheticFunctions):
    """A BoTorch test function under random shifts, scalings and rotations (:class:`TestFunctionFamily`).

    Args:
        function: ``branin``, ``hartmann3``, ``hartmann4``, ``hartmann6``, ``ackley``, ``levy``, ``rastrigin``,
            ``rosenbrock``, ``styblinski_tang``, ``griewank``, ``michalewicz``, ``dixon_price``, ``powell``,
            ``six_hump_camel``, ``eggholder``, ``drop_wave``, ``holder_table``.
        dim: input dimension of the variable-dimension functions (Ackley, Levy, ...).
        shift: maximum translation per dim, as a fraction of the domain.
        scale: maximum relative input scaling.
        rotation: maximum entry of the skew-symmetric rotation generator (radians).
    """

    __test__ = False  # not a pytest class, whatever its name says

    def __init__(self, function: str = "hartmann3", dim: int | None = None, shift: float = 0.1, scale: float = 0.1,
                 rotation: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.family = TestFunctionFamily(function, dim, shift, scale, rotation)


class HPOBFunctions(FunctionDataModule):
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
