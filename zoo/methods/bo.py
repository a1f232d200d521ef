"""Bayesian optimisation over a finite candidate pool: one harness for NAP and its baselines, an ask/tell
interface for users, and an adapter to the HPO-B benchmark protocol and results format.

* :func:`run_bo` runs any :class:`Strategy` on a batch of tasks (as :mod:`datamodules.bo.tasks` makes them) from
  their initial designs and records incumbents, normalised simple regret and decision times.
* Strategies: :class:`RandomSearch`; :class:`GPEI` (BoTorch ``SingleTaskGP`` + ``LogExpectedImprovement``
  maximised over the same pool); :class:`NAPStrategy` (the NAP policy, or with ``acquisition="ei"`` the
  likelihood head alone with EI computed from its buckets: the ablation of the RL part).
* :class:`NAPSuggester` / :class:`AskTell`: given observed ``(X, y)`` and candidate ``X``, the index of the next
  candidate, from a model object, a registry name (``zoo.load_pretrained``) or a safetensors file.
* :class:`HPOBAdapter` has HPO-B's ``observe_and_suggest(X_obs, y_obs, X_pen)``; :func:`evaluate_hpob` replays
  ``HPOBHandler.evaluate`` on the files :class:`datamodules.bo.HPOBFunctionsDataModule` reads, and
  :func:`write_hpob_results` writes HPO-B's results JSON (``{space: {dataset: {seed: [incumbents]}}}``) so that
  HPO-B's ``BenchmarkPlotter`` can rank a method against its published baselines.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safefiles import atomic_write_text
from zoo.hub.moved import resolve_class_path, resolve_class_paths
from zoo.methods.nap import NAPModule, bo_features, gather_rows, key_generator, upgrade_legacy_init_args


# ----------------------------------------------------------------------------------------------------------------
# Strategies and the harness
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class BOState:
    """What a strategy sees at step ``t`` of ``horizon``, for a batch of ``B`` tasks.

    ``x`` ``[B, N, D]`` candidates, ``valid`` ``[B, N]``, ``hist_idx`` ``[B, h]`` evaluated indices (initial design
    first), ``hist_y`` ``[B, h]`` their values, ``observed`` ``[B, N]`` bool.
    """

    x: torch.Tensor
    valid: torch.Tensor
    hist_idx: torch.Tensor
    hist_y: torch.Tensor
    observed: torch.Tensor
    t: int
    horizon: int

    @property
    def hist_x(self) -> torch.Tensor:
        return gather_rows(self.x, self.hist_idx)

    @property
    def allowed(self) -> torch.Tensor:
        return self.valid & ~self.observed


class Strategy:
    """A BO decision rule: ``select(state) -> [B]`` indices of not-yet-evaluated candidates."""

    name = "strategy"

    def select(self, state: BOState) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self, key: Any) -> None:
        """Called once per :func:`run_bo` with a key (strategies that draw random numbers re-seed from it)."""


class RandomSearch(Strategy):
    """Uniformly random among the candidates not evaluated yet (keyed generator: same seed, same picks)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.g = key_generator(seed, "random-search")

    def reset(self, key: Any) -> None:
        self.g = key_generator(self.seed, "random-search", key)

    def select(self, state: BOState) -> torch.Tensor:
        w = state.allowed.float()
        return torch.multinomial(w.cpu(), 1, generator=self.g).squeeze(-1).to(state.x.device)


class GPEI(Strategy):
    """GP-EI: a BoTorch ``SingleTaskGP`` (its default kernel, priors and outcome standardisation) fitted by
    ``fit_gpytorch_mll`` to the observations of each task, then ``LogExpectedImprovement`` (Ament et al., 2023;
    argmax-equivalent to EI but numerically safe when EI underflows) maximised exactly over the task's remaining
    candidates. Fits run under a fixed RNG seed, so results are repeatable.
    """

    name = "gp-ei"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def select(self, state: BOState) -> torch.Tensor:
        from botorch import fit_gpytorch_mll
        from botorch.acquisition import LogExpectedImprovement
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        out = torch.empty(state.x.shape[0], dtype=torch.long)
        hist_x = state.hist_x
        for b in range(state.x.shape[0]):
            allowed = state.allowed[b].nonzero().squeeze(-1)
            tx, ty = hist_x[b].double(), state.hist_y[b].double().unsqueeze(-1)
            if tx.shape[0] < 2 or float(ty.std()) == 0.0:
                # nothing to fit a GP's scale on: fall back to a uniformly random pick (keyed, repeatable)
                g = key_generator(self.seed, "gp-ei-fallback", tx.shape[0], b)
                out[b] = allowed[torch.randint(0, allowed.numel(), (), generator=g)]
                continue
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                gp = SingleTaskGP(tx, ty)
                try:
                    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
                except Exception:
                    pass
                acq = LogExpectedImprovement(gp, best_f=ty.max())
                with torch.no_grad():
                    vals = acq(state.x[b, allowed].double().unsqueeze(1))
            out[b] = allowed[int(vals.argmax())]
        return out.to(state.x.device)


class NAPStrategy(Strategy):
    """NAP's greedy decision: argmax of the policy logits (``acquisition="mlp"``) over the candidates not yet
    evaluated, or argmax of EI computed from the bar distribution (``"ei"``, the likelihood-only ablation) or of
    mean + 2 std (``"ucb"``). ``t / T`` uses the run's horizon, as the official HPO-B evaluation does.

    Decisions take the network's split inference path (:meth:`zoo.methods.nap.NAPNetwork.forward`): the candidates'
    embedding and first-layer projections are computed once per run and cached (``reset`` clears them);
    ``split=False`` takes the reference path, which gives the same choices (tested) more slowly."""

    def __init__(self, model: NAPModule, acquisition: str | None = None, name: str | None = None,
                 split: bool | None = None):
        self.model = model.eval()
        self.acquisition = acquisition or model.hparams.get("eval_af") or model.net.af_name
        self.name = name or ("nap" if self.acquisition == "mlp" else f"nap-{self.acquisition}")
        self.split = split
        self._cache: dict[str, torch.Tensor] = {}

    def reset(self, key: Any) -> None:
        self._cache.clear()

    @torch.no_grad()
    def select(self, state: BOState) -> torch.Tensor:
        hist_valid = torch.ones_like(state.hist_idx, dtype=torch.bool)
        feats = bo_features(state.hist_y, hist_valid, state.t, state.horizon)
        af, _, _ = self.model.net(state.hist_x, state.hist_y, hist_valid, state.x, feats, af_name=self.acquisition,
                                  split=self.split, cache=self._cache if self.split is not False else None)
        return af.masked_fill(~state.allowed, float("-inf")).argmax(-1)


@dataclass
class BOResult:
    """Per-task trajectories of one run: ``incumbents``/``regret`` ``[B, budget + 1]`` (after the initial design,
    then after each trial), ``actions`` ``[B, budget]`` and ``step_seconds`` ``[budget]`` (wall time of each
    batched decision; divide by ``B`` for the amortised time per decision)."""

    incumbents: torch.Tensor
    regret: torch.Tensor
    actions: torch.Tensor
    step_seconds: torch.Tensor


def run_bo(strategy: Strategy, batch: dict[str, torch.Tensor], budget: int, key: Any = 0) -> BOResult:
    """Runs ``budget`` trials of ``strategy`` on every task of ``batch`` from its initial design.

    Regret is the normalised simple regret ``max y - max_{evaluated} y`` (``y`` min-max normalised per task, so
    this is HPO-B's normalised regret ``1 - incumbent``).
    """
    x, y, valid, init = batch["x"], batch["y"], batch["valid"], batch["init"]
    bsz, n = y.shape
    n0 = init.shape[1]
    if n0 + budget > int(valid.sum(1).min()):
        raise ValueError(f"{n0} initial points + {budget} trials need that many candidates; the smallest pool "
                         f"has {int(valid.sum(1).min())}")
    strategy.reset(key)
    y_star = y.masked_fill(~valid, float("-inf")).max(1).values
    hist_idx = init.clone()
    observed = torch.zeros(bsz, n, dtype=torch.bool)
    if n0:
        observed.scatter_(1, init, True)
    inc = torch.zeros(bsz, budget + 1)
    if n0:
        inc[:, 0] = gather_rows(y, init).max(1).values
    actions = torch.zeros(bsz, budget, dtype=torch.long)
    times = torch.zeros(budget, dtype=torch.float64)
    for t in range(budget):
        state = BOState(x, valid, hist_idx, gather_rows(y, hist_idx), observed, t, budget)
        start = time.perf_counter()
        a = strategy.select(state)
        times[t] = time.perf_counter() - start
        if not (valid.gather(1, a[:, None]).all() and not observed.gather(1, a[:, None]).any()):
            raise RuntimeError(f"strategy {strategy.name!r} picked an evaluated or padded candidate")
        actions[:, t] = a
        hist_idx = torch.cat([hist_idx, a[:, None]], 1)
        observed.scatter_(1, a[:, None], True)
        inc[:, t + 1] = torch.maximum(inc[:, t], y.gather(1, a[:, None])[:, 0])
    return BOResult(inc, (y_star[:, None] - inc).clamp_min(0), actions, times)


# ----------------------------------------------------------------------------------------------------------------
# Loading models
# ----------------------------------------------------------------------------------------------------------------
def save_nap(model: NAPModule, path: str | Path) -> str:
    """Writes ``model``'s weights as safetensors with the ``class_path``/``init_args`` that rebuild it for BO in the
    file's metadata (:meth:`~zoo.methods.nap.NAPModule.inference_config`: architecture stored beside the weights),
    atomically; returns the file's sha256 for a registry entry."""
    from zoo.hub.pretrained import export_weights

    config = model.inference_config()
    meta = {"class_path": config["class_path"], "init_args": json.dumps(config["init_args"])}
    return export_weights(model, Path(path), metadata=meta)


def load_nap(source: str | Path | NAPModule) -> NAPModule:
    """A NAP model from a model object, a ``.safetensors`` file written by :func:`save_nap`, a Lightning ``.ckpt``
    (either a local path or an ``http(s)://`` / ``file://`` URL, downloaded once into the cache) or a name in the
    pretrained registry (``zoo.load_pretrained``, which checks the sha256).

    Files written before the network was injected carry flat arguments; :func:`zoo.methods.nap.upgrade_legacy_init_args`
    maps them (their weights' keys are unchanged)."""
    if isinstance(source, NAPModule):
        return source.eval()
    from safefiles import fetch, is_url

    # A URL is fetched into the cache first, as --ckpt_path does (zoo.hub.checkpoint_io), then read like a local file;
    # a path inside the repository resolves from any working directory.
    if is_url(source):
        path = fetch(str(source))
    else:
        path = Path(source)
        if path.suffix in (".safetensors", ".ckpt"):
            from zoo.hub.pretrained import weights_file

            path = weights_file(path)
    if path.suffix == ".safetensors":
        import lightning.pytorch as pl
        from lightning.pytorch.cli import instantiate_module
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            raise FileNotFoundError(f"NAP weights file {path} does not exist")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "init_args" not in meta:
            raise ValueError(f"{path}: no 'init_args' metadata; was it written by zoo.methods.bo.save_nap? (registry "
                             f"checkpoints load by name instead)")
        # written before a class moved, the file names it by its old path (zoo.hub.moved.MOVED)
        init_args = resolve_class_paths(upgrade_legacy_init_args(json.loads(meta["init_args"])))
        class_path = resolve_class_path(meta.get("class_path", "zoo.methods.nap.NAPModule"))
        model = instantiate_module(pl.LightningModule, {"_class_path": class_path, **init_args})
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    if path.suffix == ".ckpt":
        from zoo.hub.checkpoint_io import load_checkpoint

        checkpoint = load_checkpoint(path)
        # Keys with a leading underscore are LightningCLI's bookkeeping (_class_path, _instantiator), not arguments.
        import lightning.pytorch as pl
        from lightning.pytorch.cli import instantiate_module

        hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
        # the injected network is stored as its class_path/init_args (zoo.training.base.ZooModule.save_config)
        model = instantiate_module(pl.LightningModule, resolve_class_paths(
            {"_class_path": "zoo.methods.nap.NAPModule", **upgrade_legacy_init_args(hparams)}))
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()
    from zoo.hub.pretrained import load_pretrained

    model = load_pretrained(str(source))
    if not isinstance(model, NAPModule):
        raise TypeError(f"pretrained {source!r} is a {type(model).__name__}, not a NAP model")
    return model


# ----------------------------------------------------------------------------------------------------------------
# Ask/tell
# ----------------------------------------------------------------------------------------------------------------
def _as_matrix(name: str, value: Any, allow_empty: bool) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if t.numel() == 0:
        if not allow_empty:
            raise ValueError(f"{name} is empty: there is no candidate to suggest")
        return t.reshape(0, t.shape[-1] if t.dim() == 2 else 0)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D array [n, D], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: there is no candidate to suggest")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _as_vector(name: str, value: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value, dtype=np.float64)).reshape(-1)
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN; drop failed evaluations or give them a value first")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains infinite values")
    return t


class NAPSuggester:
    """Suggests the next candidate to evaluate from observed ``(X, y)`` and a candidate pool.

    Args:
        model: a :class:`~zoo.methods.nap.NAPModule`, a registry name, or a path (``.safetensors`` / ``.ckpt``).
        acquisition: ``None`` (the model's own: the NAP policy), ``"ei"`` or ``"ucb"`` from the bar distribution.
        budget: the number of trials of the whole run, the ``T`` of the ``t / T`` feature (HPO-B: 100).
        n_init: size of the initial design; ``t = len(X_obs) - n_init`` (clamped to ``[0, budget]``).
        y_normalisation: ``"observed"`` min-max normalises ``y`` over the observations (what a user with raw
            values needs; the model was trained on ``y`` in ``[0, 1]``); ``"none"`` passes ``y`` as given (HPO-B's
            handler already normalises it over the dataset).
        maximize: ``False`` to minimise ``y``.
    """

    def __init__(self, model: NAPModule | str | Path, acquisition: str | None = None, budget: int = 100,
                 n_init: int = 5, y_normalisation: str = "observed", maximize: bool = True):
        if y_normalisation not in ("observed", "none"):
            raise ValueError(f"y_normalisation must be 'observed' or 'none', got {y_normalisation!r}")
        if budget < 1 or n_init < 0:
            raise ValueError(f"budget must be >= 1 and n_init >= 0, got {budget}, {n_init}")
        self.model = load_nap(model)
        self.strategy = NAPStrategy(self.model, acquisition)
        self.budget, self.n_init = budget, n_init
        self.y_normalisation, self.maximize = y_normalisation, maximize

    @property
    def input_dim(self) -> int:
        return self.model.input_dim

    def suggest(self, X_obs: Any, y_obs: Any, X_cand: Any) -> int:
        """Index (into ``X_cand``) of the candidate to evaluate next. Candidates equal to an observed point are
        never suggested (unless all are)."""
        xc = _as_matrix("X_cand", X_cand, allow_empty=False)
        xo = _as_matrix("X_obs", X_obs, allow_empty=True)
        yo = _as_vector("y_obs", y_obs)
        if xo.shape[0] and xo.shape[1] != xc.shape[1]:
            raise ValueError(f"X_obs has {xo.shape[1]} columns but X_cand has {xc.shape[1]}: observations and "
                             f"candidates must live in the same space")
        if yo.numel() != xo.shape[0]:
            raise ValueError(f"y_obs has {yo.numel()} values but X_obs has {xo.shape[0]} rows")
        if xc.shape[1] != self.input_dim:
            raise ValueError(f"X_cand has {xc.shape[1]} columns but the model was trained on input_dim="
                             f"{self.input_dim}")
        if not self.maximize:
            yo = -yo
        if self.y_normalisation == "observed" and yo.numel():
            span = yo.max() - yo.min()
            yo = (yo - yo.min()) / span if span > 0 else torch.full_like(yo, 0.5)
        elif yo.numel() and (yo.min() < -0.1 or yo.max() > 1.1):
            raise ValueError(f"y_obs spans [{float(yo.min())}, {float(yo.max())}], outside the model's y range "
                             f"(-0.1, 1.1); use y_normalisation='observed' for raw values")
        xo = xo.reshape(-1, xc.shape[1])
        seen = (xc[:, None, :] == xo[None, :, :]).all(-1).any(-1) if xo.shape[0] else torch.zeros(len(xc), dtype=bool)
        if seen.all():
            seen = torch.zeros_like(seen)
        x = torch.cat([xo, xc]).float()[None]
        n0 = xo.shape[0]
        valid = torch.ones(1, x.shape[1], dtype=torch.bool)
        observed = torch.zeros_like(valid)
        observed[0, :n0] = True
        observed[0, n0:] = seen
        t = min(max(n0 - self.n_init, 0), self.budget)
        state = BOState(x, valid, torch.arange(n0)[None], yo.float()[None], observed, t, self.budget)
        return int(self.strategy.select(state)[0]) - n0


class AskTell:
    """A BO loop over a fixed pool for users: ``i, x = opt.ask()``; evaluate; ``opt.tell(i, y)``.

    Args:
        candidates: ``[N, D]`` pool.
        suggester: a :class:`NAPSuggester` (or anything with ``suggest(X_obs, y_obs, X_cand) -> int``).
        n_init: the first ``n_init`` asks are a random initial design (keyed by ``seed``); default the
            suggester's ``n_init``, which is what its ``t / T`` feature counts from.
    """

    def __init__(self, candidates: Any, suggester: NAPSuggester, n_init: int | None = None, seed: int = 0):
        self.candidates = _as_matrix("candidates", candidates, allow_empty=False)
        self.suggester = suggester
        self.n_init = int(getattr(suggester, "n_init", 5) if n_init is None else n_init)
        self.g = key_generator(seed, "ask-tell")
        self.indices: list[int] = []
        self.values: list[float] = []
        self._pending: int | None = None

    def ask(self) -> tuple[int, np.ndarray]:
        seen = set(self.indices)
        remaining = [i for i in range(len(self.candidates)) if i not in seen]
        if not remaining:
            raise RuntimeError("every candidate has been evaluated")
        if len(self.indices) < self.n_init:
            i = remaining[int(torch.randint(0, len(remaining), (), generator=self.g))]
        else:
            j = self.suggester.suggest(self.candidates[self.indices].numpy(), np.asarray(self.values),
                                       self.candidates[remaining].numpy())
            i = remaining[j]
        self._pending = i
        return i, self.candidates[i].numpy()

    def tell(self, index: int, y: float) -> None:
        if index in self.indices:
            raise ValueError(f"candidate {index} was already told")
        if not 0 <= index < len(self.candidates):
            raise ValueError(f"index {index} is outside the pool of {len(self.candidates)} candidates")
        if not math.isfinite(float(y)):
            raise ValueError(f"y must be a finite number, got {y}")
        self.indices.append(int(index))
        self.values.append(float(y))
        self._pending = None

    @property
    def best(self) -> tuple[int, float]:
        if not self.values:
            raise RuntimeError("nothing observed yet")
        maximize = getattr(self.suggester, "maximize", True)
        k = int(np.argmax(self.values) if maximize else np.argmin(self.values))
        return self.indices[k], self.values[k]


# ----------------------------------------------------------------------------------------------------------------
# HPO-B
# ----------------------------------------------------------------------------------------------------------------
class HPOBAdapter:
    """HPO-B's method interface: ``observe_and_suggest(X_obs, y_obs, X_pen) -> index into X_pen``.

    The handler passes ``y`` already min-max normalised over the dataset, so ``y`` goes to the model as given,
    ``n_init = 5`` and ``T = n_trials`` (100 in the benchmark), as the official NAP evaluation.
    """

    def __init__(self, model: NAPModule | str | Path, n_trials: int = 100, acquisition: str | None = None):
        self.suggester = NAPSuggester(model, acquisition=acquisition, budget=n_trials, n_init=5,
                                      y_normalisation="none")

    def observe_and_suggest(self, X_obs: Any, y_obs: Any, X_pen: Any) -> int:
        return self.suggester.suggest(X_obs, y_obs, X_pen)


def evaluate_hpob(method: Any, root: str | Path, search_spaces: Sequence[str], seeds: Sequence[str] = (
        "test0", "test1", "test2", "test3", "test4"), n_trials: int = 100, n_initial: int = 5,
        progress: Callable[[str], None] | None = None) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``HPOBHandler.evaluate`` over the meta-test datasets of ``search_spaces``.

    Each run starts from the 5 official initial configurations, calls ``method.observe_and_suggest`` ``n_trials``
    times over the pending configurations, and records the incumbent (normalised y) after the initial design and
    after each trial: ``1 + n_trials`` values, the layout of the NAP repository's ``results/HPO-B/*.json``.
    """
    from datamodules.bo.hpob import read_bo_initializations, read_hpob, resolve_space

    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for space in search_spaces:
        sid = resolve_space(space)
        data = read_hpob(root, "test", sid)
        inits = read_bo_initializations(root, sid)
        results[sid] = {}
        for ds, (x, y) in data.items():
            x, y = x.numpy(), y.numpy()
            y = (y - y.min()) / (y.max() - y.min())
            results[sid][ds] = {}
            for seed in seeds:
                if ds not in inits or seed not in inits[ds]:
                    raise KeyError(f"bo-initializations.json: no {seed!r} for space {sid}, dataset {ds}")
                current = [int(i) for i in inits[ds][seed][:n_initial]]
                bad = [i for i in current if not 0 <= i < len(x)]
                if bad:
                    raise IndexError(f"bo-initializations.json: space {sid}, dataset {ds}, seed {seed!r}: initial "
                                     f"index {bad[0]} is outside the dataset's {len(x)} rows (0..{len(x) - 1})")
                pending = [i for i in range(len(x)) if i not in set(current)]
                history = [float(y[current].max())]
                for _ in range(n_trials):
                    if not pending:
                        history.append(history[-1])
                        continue
                    j = int(method.observe_and_suggest(x[current], y[current].reshape(-1, 1), x[pending]))
                    if not 0 <= j < len(pending):
                        raise ValueError(f"observe_and_suggest returned {j}, outside the {len(pending)} pending")
                    current.append(pending.pop(j))
                    history.append(float(max(history[-1], y[current[-1]])))
                results[sid][ds][seed] = history
                if progress:
                    progress(f"{sid}/{ds}/{seed}: final incumbent {history[-1]:.4f}")
    return results


def write_hpob_results(results: dict[str, dict[str, dict[str, list[float]]]], path: str | Path) -> None:
    """Writes results in HPO-B's format, atomically (temp file + rename)."""
    check_hpob_results(results)
    atomic_write_text(path, json.dumps(results))


def check_hpob_results(results: Any, where: str = "results") -> None:
    """Raises if ``results`` is not ``{space: {dataset: {seed: [numbers in [0, 1], non-decreasing]}}}``."""
    if not isinstance(results, dict):
        raise ValueError(f"{where}: expected {{space: {{dataset: {{seed: [incumbents]}}}}}}")
    for sid, sets in results.items():
        for ds, seeds in sets.items():
            for seed, traj in seeds.items():
                at = f"{where}[{sid}][{ds}][{seed}]"
                if not isinstance(traj, list) or not traj:
                    raise ValueError(f"{at}: expected a non-empty list of incumbents")
                arr = np.asarray(traj, dtype=float)
                if not np.isfinite(arr).all() or (arr < -1e-9).any() or (arr > 1 + 1e-9).any():
                    raise ValueError(f"{at}: incumbents must be normalised values in [0, 1]")
                if (np.diff(arr) < -1e-12).any():
                    raise ValueError(f"{at}: incumbents must be non-decreasing")


def read_hpob_results(path: str | Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    with open(path) as f:
        results = json.load(f)
    check_hpob_results(results, str(path))
    return results
