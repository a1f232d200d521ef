"""SuSana Distancia on Glyphs: CE vs CE+Proto-Triplet vs CE+ICNN vs CE+Proto-Triplet+ICNN, 5- and 20-way.

    python benchmarks/susana_glyphs.py          # 5-way 1- and 5-shot: 4 losses x 2 shots x 3 seeds, 2 epochs of 100
                                                # training episodes each (~50 min on 2 cores); registers the best
                                                # Proto-Triplet and ICNN checkpoints
    python benchmarks/susana_glyphs.py --settings 20w1s 20w5s --losses ce prototriplet-icnn --epochs 2 \
        --train-episodes 15 --val-episodes 20 --test-episodes 100 --threads 1 --timing-steps 0
                                                # the README's 20-way figures (~12 min on 2 shared cores)
    python benchmarks/susana_glyphs.py --quick  # tiny budget, 1 seed -> results/susana_glyphs_quick.json

Both write benchmarks/results/susana_glyphs.json; a run replaces the settings it ran and keeps the others, each
setting with the command, budget and machine that produced it (``runs``), so the README can name them.

Settings. ``<N>w<K>s`` is N-way K-shot. Training uses the shot's own config (1-shot: 30-way training episodes,
5-shot: 20-way; Snell et al.'s shapes); validation and test episodes are N-way, with 15 queries per class at 5-way
and ``--query-20way`` (5) at 20-way (15 would triple the cost of an episode that already holds 20 classes). Glyphs'
test split has 385 classes and its validation split 337 (``datamodules.images.glyphs``), so 20-way episodes are
valid. Glyphs 5-way is near its ceiling (CE alone 93% / 97%), which is why 20-way is measured.

Budget. The options are the budget of every run of the command (recorded with it). The 5-way default is the 5-shot
config's own training budget (a quarter of the 1-shot config's); the 20-way run had to fit a 14-minute slot on two
CPU cores shared with other jobs, hence its tiny budget, two losses and one torch thread (two threads on
oversubscribed cores are slower than one). Two diagnostics say whether a loss that does not help is limited by
the budget or by its own scale: the validation accuracy after each epoch, and, on the first 10 test episodes of
the trained model, the share of queries whose Proto-Triplet hinge is active with the median distance to the own
prototype and the median gap to the nearest other prototype, against the margin (0.5).

Protocol. Every setting uses the same backbone (Conv-4), the same budget and the same seeds, and is tested on the
same fixed test episodes (data seed 0, which also fixes the training episodes; the seeds vary the initialisation).
Per setting we report the mean accuracy over seeds with a 95% CI over the episodes (each episode's accuracy averaged
over the seeds), and the difference to CE alone as a *paired* difference on those episodes with its own 95% CI; the
claim ``susana-pt-icnn-vs-ce-<setting>`` states that CE + Proto-Triplet + ICNN beats CE. The step-time overhead of
each loss is measured separately, on identical episodes, as the median time of a full training step (forward, loss,
backward, Adam) relative to CE alone (it depends on the shot's training episodes only, not on the test way).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch
from common import RESULTS, ROOT, claim, export_and_register, fit_and_test, machine, validation_curve, write_results

from zoo.methods.losses import euclidean_distance, prototypes
from zoo.training.metrics import mean_ci95

LOSSES = {"ce": "CE (ProtoNet)", "prototriplet": "CE + Proto-Triplet", "icnn": "CE + ICNN (full)",
          "prototriplet-icnn": "CE + Proto-Triplet + ICNN (full)"}
SHOTS = {1: "configs/protonet/glyphs.yaml", 5: "configs/protonet/glyphs-5shot.yaml"}
#: setting key -> (way of the validation and test episodes, shot)
SETTINGS = {"5w1s": (5, 1), "5w5s": (5, 5), "20w1s": (20, 1), "20w5s": (20, 5)}
COMMAND = "python benchmarks/susana_glyphs.py"


@torch.inference_mode()
def margin_diagnostic(model, dm, episodes: int = 10, margin: float = 0.5) -> dict[str, float]:
    """Is the Proto-Triplet margin on the scale of the embedding's distances? On the first test episodes: the share
    of queries with an active hinge ``d(q, c_y) - min_k d(q, c_k) + margin > 0``, and the medians of ``d(q, c_y)``
    and of the gap ``min_k d(q, c_k) - d(q, c_y)`` (loss ``zoo.methods.losses.proto_triplet_loss``'s distance)."""
    model.eval()
    ds = dm.dataset("test")
    active, own, gap = [], [], []
    for i in range(episodes):
        ep = ds[(0, i)]
        support, query = model.embed_episode(ep)
        dist = euclidean_distance(query, prototypes(support, ep.support_y, ep.n_way))
        mask = torch.nn.functional.one_hot(ep.query_y.long(), ep.n_way).bool()
        pos, neg = dist[mask], dist.masked_fill(mask, float("inf")).min(1).values
        active.append((pos - neg + margin > 0).float())
        own.append(pos)
        gap.append(neg - pos)
    return {"active_hinge_share": float(torch.cat(active).mean()), "median_own_distance": float(torch.cat(own).median()),
            "median_gap_to_nearest_other": float(torch.cat(gap).median()), "margin": margin}


def step_overhead(shot: int, repeats: int, losses: list[str]) -> dict[str, float]:
    """Median training-step seconds per loss setting on identical episodes (alternating settings each round)."""
    import yaml

    from datamodules.images import GlyphsDataModule
    from zoo.nn.backbones import Conv4
    from zoo.methods.protonet import ProtoNet

    dm = GlyphsDataModule(n_way=5, k_shot=shot, train_n_way=30 if shot == 1 else 20)
    episodes = [dm.dataset("train")[(0, i)] for i in range(repeats)]
    models = {}
    for loss in losses:
        terms = yaml.safe_load((ROOT / f"configs/losses/{loss}.yaml").read_text())["model"]["init_args"]["loss_terms"]
        torch.manual_seed(0)
        model = ProtoNet(Conv4(1, 64, "flatten", 28), loss_terms=terms)
        models[loss] = (model, torch.optim.Adam(model.parameters(), 1e-3))
    times: dict[str, list[float]] = {loss: [] for loss in losses}
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
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["5w1s", "5w5s"])
    parser.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES),
                        help="loss settings to train (CE always runs: it is the baseline)")
    parser.add_argument("--timing-steps", type=int, default=12, help="timed training steps per loss (0: skip)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of every run")
    parser.add_argument("--train-episodes", type=int, default=100, help="training episodes per epoch")
    parser.add_argument("--val-episodes", type=int, default=100, help="fixed validation episodes (best-on-val)")
    parser.add_argument("--test-episodes", type=int, default=1000, help="fixed test episodes")
    parser.add_argument("--query-20way", type=int, default=5, help="queries per class of 20-way episodes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.train_episodes, args.val_episodes, args.test_episodes = 1, 10, 20, 50
        args.seeds, args.timing_steps = args.seeds[:1], min(args.timing_steps, 3)
    budget = [f"--trainer.max_epochs={args.epochs}", f"--data.train_episodes={args.train_episodes}",
              f"--data.val_episodes={args.val_episodes}", f"--data.test_episodes={args.test_episodes}"]
    losses = ["ce", *(loss for loss in args.losses if loss != "ce")]
    settings, runs, diagnostics, claims, timings = {}, {}, {}, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.settings:
            way, shot = SETTINGS[key]
            query = 15 if way == 5 else args.query_20way
            shape = [f"--data.n_way={way}", f"--data.q_query={query}"]
            per_seed: dict[str, list[list[float]]] = {}
            minutes: dict[str, list[float]] = {}
            for loss in losses:
                results = []
                for seed in args.seeds:
                    run = fit_and_test(str(ROOT / SHOTS[shot]), ["--config", str(ROOT / f"configs/losses/{loss}.yaml"),
                                                                 f"--seed_everything={seed}", *budget, *shape], tmp)
                    cli = run["cli"]
                    diagnostics.setdefault(key, {}).setdefault(loss, []).append(
                        {"seed": seed, "val_curve": validation_curve(cli.trainer.logger.log_dir),
                         **margin_diagnostic(cli.model, cli.datamodule, margin=cli.model.margin)})
                    per_seed.setdefault(loss, []).append(run["per_episode"])
                    minutes.setdefault(loss, []).append(round(run["train_seconds"] / 60, 2))
                    print(f"{key} {LOSSES[loss]} seed {seed}: {100 * run['test_acc']:.2f} +- "
                          f"{100 * run['test_ci95']:.2f} % (val {100 * run['best_val_acc']:.2f}), "
                          f"{run['train_seconds'] / 60:.1f} min", flush=True)
                    results.append(run)
                best = max(results, key=lambda r: r["best_val_acc"])  # chosen on validation, not test
                if not args.quick and way == 5 and loss in ("prototriplet", "icnn"):
                    export_and_register(f"protonet-{loss}-conv4-glyphs-{key}", best, system="susana",
                                        config=SHOTS[shot], setting=f"Glyphs 5-way {shot}-shot 15-query, {LOSSES[loss]}",
                                        command=command + f"  (seed {args.seeds[results.index(best)]}, best "
                                        "validation accuracy of the seeds)",
                                        notes=f"train with: zoo fit --config {SHOTS[shot]} --config "
                                              f"configs/losses/{loss}.yaml {' '.join(budget)}")
                for run in results:
                    run.pop("cli")
            if args.timing_steps and shot not in timings:
                timings[shot] = step_overhead(shot, args.timing_steps, losses)
            timing = timings.get(shot)
            # each episode's accuracy averaged over seeds: the same episodes for every loss
            episode_acc = {loss: torch.tensor(accs).mean(0).tolist() for loss, accs in per_seed.items()}
            rows = {}
            for loss in losses:
                mean, ci = mean_ci95(episode_acc[loss])
                vs_ce = claim(f"susana-{loss.replace('prototriplet', 'pt')}-vs-ce-{key}",
                              f"{LOSSES[loss]} is more accurate than CE alone on Glyphs {way}-way {shot}-shot "
                              "(paired over the fixed test episodes, seed-averaged)",
                              episode_acc[loss], episode_acc["ce"], seeds=len(args.seeds), trained=True)
                if loss == "prototriplet-icnn":
                    claims.append(vs_ce)
                rows[loss] = {"name": LOSSES[loss], "test_acc": mean, "test_ci95": ci, "diff_vs_ce": vs_ce["diff"],
                              "diff_ci95": vs_ce["ci95"], "episodes": len(episode_acc[loss]),
                              "seed_accs": [statistics.fmean(a) for a in per_seed[loss]], "train_minutes": minutes[loss],
                              "step_seconds": timing[loss] if timing else None,
                              "step_overhead_vs_ce": timing[loss] / timing["ce"] - 1 if timing else None,
                              "per_episode": [round(a, 4) for a in episode_acc[loss]]}
            settings[key] = rows
            runs[key] = {"command": command, "seeds": args.seeds, "budget_overrides": budget, "query": query,
                         "machine": machine()}
            print(f"\nGlyphs {way}-way {shot}-shot, {len(args.seeds)} seed(s), {len(episode_acc['ce'])} fixed test "
                  "episodes\n| loss | accuracy (95% CI) | vs CE (paired 95% CI) | step time vs CE |\n|---|---|---|---|")
            for row in rows.values():
                step = f"{100 * row['step_overhead_vs_ce']:+.1f}%" if timing else "-"
                print(f"| {row['name']} | {100 * row['test_acc']:.2f} +- {100 * row['test_ci95']:.2f} | "
                      f"{100 * row['diff_vs_ce']:+.2f} +- {100 * row['diff_ci95']:.2f} | {step} |", flush=True)
    name = "susana_glyphs_quick" if args.quick else "susana_glyphs"
    previous = RESULTS / f"{name}.json"
    if previous.is_file():  # keep the settings this run did not measure, with their own provenance and claims
        old = json.loads(previous.read_text())
        kept = [k for k in old["settings"] if k not in settings]
        settings.update({k: old["settings"][k] for k in kept})
        runs.update({k: old["runs"][k] for k in kept})
        diagnostics.update({k: old["diagnostics"][k] for k in kept if k in old.get("diagnostics", {})})
        claims += [c for c in old["claims"] if c["id"].rsplit("-", 1)[1] in kept]
    order = [k for k in SETTINGS if k in settings]
    claims.sort(key=lambda c: order.index(c["id"].rsplit("-", 1)[1]))
    path = write_results(name, {"command": command, "runs": {k: runs[k] for k in order},
                                "settings": {k: settings[k] for k in order}, "diagnostics": diagnostics,
                                "claims": claims})
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
