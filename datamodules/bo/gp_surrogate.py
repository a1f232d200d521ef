"""The GP surrogate behind HPO-B's training tasks, as the official NAP code samples them: one GP fitted per
meta-train dataset (cached), then tasks drawn from its posterior at perturbed inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from safefiles import cached_build, spec_key
from datamodules.progress import Progress

if TYPE_CHECKING:
    from datamodules.bo.hpob import HPOBSpace


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

    Fits one GP per meta-train dataset (cached by :func:`safefiles.cached_build` in
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
