"""Optimise your own black-box function with NAP through the ask/tell loop.

    python docs/examples/bo_ask_tell.py

The function here is Hartmann-3 (Dixon & Szego 1978; minimum -3.86278 at (0.1146, 0.5556, 0.8525)), written out so
that nothing but numpy is needed to evaluate it; replace `f` with your own. NAP chooses among a fixed pool of
candidates in [0, 1]^D: scale your search space into the unit cube. The registry's `nap-hartmann3` policy was
trained on shifted, scaled and rotated versions of this function (the NAP page); on another function, use the
model trained on the family closest to it, or train one (`zoo fit --config nap/<family>`).

For comparison the same number of evaluations is spent on random search over the same pool. One run of each: this is
a demonstration, not a claim (the NAP page has the paired comparison over 25 runs).
"""

from __future__ import annotations

import numpy as np

from zoo.methods.bo import AskTell, NAPSuggester

ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
MINIMUM = -3.86278


def f(x: np.ndarray) -> float:
    """Hartmann-3, to be minimised."""
    return float(-ALPHA @ np.exp(-(A * (x - P) ** 2).sum(axis=1)))


def main(n_candidates: int = 1000, n_init: int = 5, budget: int = 50, seed: int = 0) -> dict[str, float]:
    candidates = np.random.default_rng(seed).random((n_candidates, 3))

    suggester = NAPSuggester("nap-hartmann3", budget=budget, n_init=n_init, maximize=False)
    opt = AskTell(candidates, suggester, seed=seed)   # the first n_init asks are a random initial design
    for _ in range(n_init + budget):
        i, x = opt.ask()          # index into the pool and the point itself
        opt.tell(i, f(x))         # evaluate it (here: a formula; yours may take hours)
    best_index, best_value = opt.best

    pool_best = min(f(x) for x in candidates)
    random_pick = np.random.default_rng(seed + 1).choice(n_candidates, n_init + budget, replace=False)
    random_best = min(f(candidates[i]) for i in random_pick)
    print(f"NAP after {n_init} + {budget} evaluations: best f = {best_value:.4f} at {np.round(candidates[best_index], 3)}")
    print(f"random search, same number of evaluations: best f = {random_best:.4f}")
    print(f"best point in the pool: f = {pool_best:.4f} (global minimum {MINIMUM})")
    return {"nap": best_value, "random": random_best, "pool": pool_best}


if __name__ == "__main__":
    main()
