"""``zoo compare RUN_A RUN_B``: the paired difference of two runs' test accuracies on the same fixed episodes.

    zoo compare runs/metazoo/abc123 runs/metazoo/def456

Prints ``A - B`` (mean of per-episode accuracy differences) with its 95% confidence interval
(:func:`zoo.training.metrics.paired_difference_ci95`), and each run's own mean +- CI. Pairing is only valid when both runs
were tested on the very same episodes, so it refuses, naming what differs, unless both runs recorded the same
episode-set hash (``test_episodes.json``, :mod:`datamodules.episode_set`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from datamodules.episode_set import episode_set_differences
from zoo.training.metrics import mean_ci95, paired_difference_ci95
from zoo.cli.runs import Run, load_run


class EpisodeSetMismatch(ValueError):
    """Two runs cannot be paired: they were tested on different (or unrecorded) episode sets."""


@dataclass
class Comparison:
    """``a`` minus ``b`` on ``n`` shared episodes; accuracies as fractions."""

    a: str
    b: str
    n: int
    acc_a: float
    ci_a: float
    acc_b: float
    ci_b: float
    diff: float
    ci95: float

    def summary(self) -> str:
        sign = "better" if self.diff - self.ci95 > 0 else "worse" if self.diff + self.ci95 < 0 else "no different"
        return (f"A = {self.a}: {100 * self.acc_a:.2f} +- {100 * self.ci_a:.2f} %\n"
                f"B = {self.b}: {100 * self.acc_b:.2f} +- {100 * self.ci_b:.2f} %\n"
                f"A - B = {100 * self.diff:+.2f} +- {100 * self.ci95:.2f} points (paired, 95% CI, {self.n} shared "
                f"test episodes): A is {sign} at 95%")


def check_same_episodes(a: Run, b: Run) -> None:
    """Raise :class:`EpisodeSetMismatch` naming the difference unless both runs recorded the same episode set."""
    for run in (a, b):
        if not run.episodes:
            raise EpisodeSetMismatch(f"{run.path}: no test_episodes.csv; test the run first (zoo test ... or "
                                     "--test_after_fit=true)")
        if run.episode_set is None:
            raise EpisodeSetMismatch(f"{run.path}: no test_episodes.json, so nothing proves which episodes it was "
                                     "tested on; re-test it with this version of the zoo")
    diffs = episode_set_differences(a.episode_set, b.episode_set)
    if diffs:
        raise EpisodeSetMismatch(f"{a.path} and {b.path} were tested on different episode sets: " + "; ".join(diffs))
    if set(a.episodes) != set(b.episodes):  # same hash, so only a hand-edited CSV gets here
        raise EpisodeSetMismatch(f"{a.path} and {b.path}: test_episodes.csv lists different episodes than the "
                                 "recorded episode set")


def compare_runs(a: Run, b: Run) -> Comparison:
    """The paired difference ``a - b`` over their shared test episodes (see module docstring)."""
    check_same_episodes(a, b)
    shared = sorted(a.episodes)
    acc_a, acc_b = [a.episodes[i] for i in shared], [b.episodes[i] for i in shared]
    diff, ci = paired_difference_ci95(acc_a, acc_b)
    return Comparison(a.name, b.name, len(shared), *mean_ci95(acc_a), *mean_ci95(acc_b), diff, ci)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="run directory A (holds config.yaml, test_episodes.csv/.json)")
    parser.add_argument("run_b", help="run directory B")
    args = parser.parse_args(argv)
    try:
        comparison = compare_runs(load_run(args.run_a), load_run(args.run_b))
    except (EpisodeSetMismatch, FileNotFoundError, ValueError) as err:
        print(f"zoo compare: {err}", file=sys.stderr)
        return 2
    print(comparison.summary())
    return 0
