"""SuSana Distancia on Glyphs: CE vs CE+Proto-Triplet vs CE+ICNN vs CE+Proto-Triplet+ICNN, 5-way 1- and 5-shot.

    python benchmarks/susana_glyphs.py                 # 4 loss settings x 2 shots x 3 seeds, 2 epochs of 100
                                                       # training episodes each (~50 min on 2 cores); writes
                                                       # benchmarks/results/susana_glyphs.json and registers the
                                                       # best Proto-Triplet and ICNN checkpoints
    python benchmarks/susana_glyphs.py --epochs 8 --val-episodes 500   # the 1-shot config's own budget (~4x longer)
    python benchmarks/susana_glyphs.py --quick         # tiny budget into a temp dir, registers nothing

Budget. 24 trainings do not fit the 1-shot config's 8 epochs on a 2-core CPU in one sitting, so by default every
setting gets the same 2 epochs x 100 training episodes with 100 validation episodes per epoch (the 5-shot config's
own training budget; a quarter of the 1-shot config's). The budget is recorded in the results file and in the
registry entries, and the README quotes it.

Protocol. Every setting uses the same backbone (Conv-4), the same budget and the same seeds, and is tested on the
same 1,000 fixed test episodes (data seed 0; the seeds vary the initialisation). Per setting we report the mean
accuracy over seeds with a 95% CI over the 1,000 episodes (each episode's accuracy averaged over the seeds), and
the difference to CE alone as a *paired* difference on those episodes with its own 95% CI. The step-time overhead
of each loss is measured separately, on identical episodes, as the median time of a full training step (forward,
loss, backward, Adam) relative to CE alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
from common import ROOT, export_and_register, fit_and_test, write_results

from zoo.metrics import mean_ci95, paired_difference_ci95

LOSSES = {"ce": "CE (ProtoNet)", "prototriplet": "CE + Proto-Triplet", "icnn": "CE + ICNN (full)",
          "prototriplet-icnn": "CE + Proto-Triplet + ICNN (full)"}
SHOTS = {1: "configs/protonet/glyphs.yaml", 5: "configs/protonet/glyphs-5shot.yaml"}
COMMAND = "python benchmarks/susana_glyphs.py"


def step_overhead(shot: int, repeats: int) -> dict[str, float]:
    """Median training-step seconds per loss setting on identical episodes (alternating settings each round)."""
    import yaml

    from datamodules.images import Glyphs
    from zoo.backbones import Conv4
    from zoo.protonet import ProtoNet

    dm = Glyphs(n_way=5, k_shot=shot, train_n_way=30 if shot == 1 else 20)
    episodes = [dm.dataset("train")[(0, i)] for i in range(repeats)]
    models = {}
    for loss in LOSSES:
        terms = yaml.safe_load((ROOT / f"configs/losses/{loss}.yaml").read_text())["model"]["init_args"]["loss_terms"]
        torch.manual_seed(0)
        model = ProtoNet(Conv4(1, 64, "flatten", 28), loss_terms=terms)
        models[loss] = (model, torch.optim.Adam(model.parameters(), 1e-3))
    times: dict[str, list[float]] = {loss: [] for loss in LOSSES}
    for i, episode in enumerate(episodes):
        for loss, (model, opt) in models.items():
            start = time.perf_counter()
            value, _, _ = model.episode_loss(episode)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            if i > 0:  # the first round warms up the allocator
                times[loss].append(time.perf_counter() - start)
    return {loss: statistics.median(t) for loss, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget, 1 seed, no export")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5], choices=[1, 5])
    parser.add_argument("--timing-steps", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of every run")
    parser.add_argument("--train-episodes", type=int, default=100, help="training episodes per epoch")
    parser.add_argument("--val-episodes", type=int, default=100, help="fixed validation episodes (best-on-val)")
    args = parser.parse_args(argv)
    budget = ["--trainer.max_epochs=1", "--data.train_episodes=10", "--data.val_episodes=20",
              "--data.test_episodes=50"] if args.quick else [
        f"--trainer.max_epochs={args.epochs}", f"--data.train_episodes={args.train_episodes}",
        f"--data.val_episodes={args.val_episodes}"]
    seeds = args.seeds[:1] if args.quick else args.seeds
    results: dict = {"command": COMMAND, "seeds": seeds, "budget_overrides": budget, "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for shot in args.shots:
            per_loss: dict[str, list[dict]] = {}
            for loss in LOSSES:
                per_loss[loss] = []
                for seed in seeds:
                    run = fit_and_test(str(ROOT / SHOTS[shot]), ["--config", str(ROOT / f"configs/losses/{loss}.yaml"),
                                                                 f"--seed_everything={seed}", *budget], tmp)
                    print(f"{shot}-shot {LOSSES[loss]} seed {seed}: {100 * run['test_acc']:.2f} +- "
                          f"{100 * run['test_ci95']:.2f} % (val {100 * run['best_val_acc']:.2f}), "
                          f"{run['train_seconds'] / 60:.1f} min", flush=True)
                    per_loss[loss].append(run)
                best = max(per_loss[loss], key=lambda r: r["best_val_acc"])  # chosen on validation, not test
                if not args.quick and loss in ("prototriplet", "icnn"):
                    export_and_register(f"protonet-{loss}-conv4-glyphs-5w{shot}s", best, system="susana",
                                        config=SHOTS[shot], setting=f"Glyphs 5-way {shot}-shot 15-query, {LOSSES[loss]}",
                                        command=COMMAND + f"  (seed {seeds[per_loss[loss].index(best)]}, best "
                                        "validation accuracy of the seeds)",
                                        notes=f"train with: zoo fit --config {SHOTS[shot]} --config "
                                              f"configs/losses/{loss}.yaml {' '.join(budget)}")
                for run in per_loss[loss]:
                    run.pop("cli")
            # each episode's accuracy averaged over seeds: the same episodes for every setting
            episode_acc = {loss: torch.tensor([r["per_episode"] for r in runs]).mean(0) for loss, runs in per_loss.items()}
            timing = step_overhead(shot, args.timing_steps if not args.quick else 3)
            rows = {}
            for loss, runs in per_loss.items():
                mean, ci = mean_ci95(episode_acc[loss])
                diff, diff_ci = paired_difference_ci95(episode_acc[loss], episode_acc["ce"])
                rows[loss] = {"name": LOSSES[loss], "test_acc": mean, "test_ci95": ci, "diff_vs_ce": diff,
                              "diff_ci95": diff_ci, "seed_accs": [r["test_acc"] for r in runs],
                              "train_minutes": [round(r["train_seconds"] / 60, 2) for r in runs],
                              "step_seconds": timing[loss], "step_overhead_vs_ce": timing[loss] / timing["ce"] - 1}
            results["settings"][f"5w{shot}s"] = rows
            print(f"\nGlyphs 5-way {shot}-shot, {len(seeds)} seed(s), {len(episode_acc['ce'])} fixed test episodes")
            print("| loss | accuracy (95% CI) | vs CE (paired 95% CI) | step time vs CE |\n|---|---|---|---|")
            for row in rows.values():
                print(f"| {row['name']} | {100 * row['test_acc']:.2f} +- {100 * row['test_ci95']:.2f} | "
                      f"{100 * row['diff_vs_ce']:+.2f} +- {100 * row['diff_ci95']:.2f} | "
                      f"{100 * row['step_overhead_vs_ce']:+.1f}% |", flush=True)
    if not args.quick:
        print(f"wrote {write_results('susana_glyphs', results)}")


if __name__ == "__main__":
    sys.exit(main())
