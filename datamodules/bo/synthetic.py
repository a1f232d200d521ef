"""Synthetic task families and their DataModules: samples of a GP prior (:class:`GPPriorFamily`) and BoTorch test
functions under random shifts, scalings and rotations (:class:`TestFunctionFamily`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from datamodules.bo.base import FunctionDataModule
from datamodules.bo.tasks import (
    TaskFamily,
    draw_initial_design,
    make_task,
)
from datamodules.episodes import episode_generator


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


class SyntheticFunctionsDataModule(FunctionDataModule):
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


class GPPriorFunctionsDataModule(SyntheticFunctionsDataModule):
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


class TestFunctionsDataModule(SyntheticFunctionsDataModule):
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
