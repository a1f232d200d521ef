"""Where `make demo`'s time goes: the Glyphs build, a training step, a validation/test episode, and the totals.

    python benchmarks/demo_phases.py            # writes benchmarks/results/demo_phases.json

The demo (``zoo fit --config configs/protonet/glyphs.yaml``, then the 1,000-episode test) is too long to time whole
on a shared machine, so this times its units in one process, in the config's own episodes, model and optimiser:
the Glyphs build (into a fresh temporary cache), ``--train_steps`` training steps (data + forward + backward +
Adam) and ``--eval_episodes`` evaluation episodes (data + forward; test episodes have the validation shape), and
multiplies them by the config's counts, with and without ``configs/trainer/demo.yaml`` (fewer validations of
fewer episodes). Lightning's own per-step overhead is not included (``benchmarks/throughput.py`` measures it). The
machine's load average is recorded: on a shared machine every unit slows, but their ratios hold better.

Claim (``demo-within-budget``, one-sample: nothing here compares two methods): the demo with
``configs/trainer/demo.yaml`` is estimated to finish within ``--budget-minutes`` (10) on this machine. Each timed
training step gives one estimate of the total (the build, the validations and the test at their measured means,
the training at that step's time), so the interval is over the training steps, which dominate the total.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
import yaml

from common import ROOT, claim, write_results
from zoo.cli.lightning_cli import build_cli
from zoo.training.metrics import mean_ci95

CONFIG = str(ROOT / "configs/protonet/glyphs.yaml")
COMMAND = "python benchmarks/demo_phases.py"
DEMO = ROOT / "configs/trainer/demo.yaml"


def _times(items, step) -> torch.Tensor:
    """Seconds of ``step(item)`` for each item, data loading included (the items come from a live iterator)."""
    out = []
    it = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return torch.tensor(out, dtype=torch.float64)
        step(item)
        out.append(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=30)
    parser.add_argument("--eval_episodes", type=int, default=100)
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="the demo's time budget (the claim)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 training steps, 5 episodes, results to demo_phases_quick.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_steps, args.eval_episodes = 3, 5
    load_start = os.getloadavg()[0]

    from datamodules.images.glyphs import build_glyphs

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        build_glyphs(cache, image_size=28)
        build_seconds = time.perf_counter() - start
    load_after_build = os.getloadavg()[0]

    cli = build_cli(["--config", CONFIG, "--trainer.logger=false"], run=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    dm.prepare_data()
    dm.setup("fit")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(episode) -> None:
        loss = model.episode_loss(episode)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def eval_episode(episode) -> None:
        model.episode_loss(episode)

    model.train()
    train = _times((e for _, e in zip(range(args.train_steps), dm.train_dataloader())), train_step)
    model.eval()
    with torch.inference_mode():  # as Lightning evaluates
        evals = _times((e for _, e in zip(range(args.eval_episodes), dm.val_dataloader())), eval_episode)

    epochs = trainer.max_epochs
    train_per_epoch, val_per_epoch, test_episodes = (dm.episodes[s] for s in ("train", "val", "test"))
    t_train, t_eval = float(train.mean()), float(evals.mean())
    phases = {"glyphs_build": build_seconds, "training": epochs * train_per_epoch * t_train,
              "validation": epochs * val_per_epoch * t_eval, "test": test_episodes * t_eval}
    demo = yaml.safe_load(DEMO.read_text())["trainer"]
    demo_val = min(val_per_epoch, demo.get("limit_val_batches", val_per_epoch))
    demo_validations = epochs // demo.get("check_val_every_n_epoch", 1)
    demo_phases = {**phases, "validation": demo_validations * demo_val * t_eval}
    # one estimate of the demo's total per timed training step: the training phase at that step's time
    per_step_totals = [sum(demo_phases.values()) - demo_phases["training"] + epochs * train_per_epoch * float(t)
                       for t in train]
    budget_s = 60 * args.budget_minutes
    payload = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "config": "configs/protonet/glyphs.yaml",
        "load_average_1m": {"start": round(load_start, 2), "after_build": round(load_after_build, 2),
                            "end": round(os.getloadavg()[0], 2)},
        "units": {"train_step_s": {"mean": t_train, "ci95": mean_ci95(train)[1], "n": len(train)},
                  "eval_episode_s": {"mean": t_eval, "ci95": mean_ci95(evals)[1], "n": len(evals)}},
        "counts": {"epochs": epochs, "train_episodes": train_per_epoch, "val_episodes": val_per_epoch,
                   "demo_val_episodes": demo_val,
                   "demo_validations": demo_validations, "test_episodes": test_episodes},
        "estimated_seconds": {"full_config": {**phases, "total": sum(phases.values())},
                              "with_trainer_demo_yaml": {**demo_phases, "total": sum(demo_phases.values())}},
        "claims": [claim("demo-within-budget", f"`make demo` (configs/trainer/demo.yaml) is estimated to finish "
                         f"within {args.budget_minutes:g} minutes on this machine (one-sample over the timed training "
                         "steps)", [budget_s] * len(per_step_totals), per_step_totals, seeds=1, trained=False)],
    }
    path = write_results("demo_phases_quick" if args.quick else "demo_phases", payload)
    for name, est in payload["estimated_seconds"].items():
        shares = ", ".join(f"{k} {v:.0f} s ({v / est['total']:.0%})" for k, v in est.items() if k != "total")
        print(f"{name}: total {est['total']:.0f} s = {shares}")
    print(f"load average {payload['load_average_1m']}; wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
