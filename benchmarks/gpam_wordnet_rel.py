"""GPAM vs ProtoNet with NOTA on the embedded WordNet-Rel benchmark, 5-way 1-shot and 5-shot, same encoder and episodes.

For each shot setting and seed this script trains, through the real CLI configs and on the same frozen MiniLM
entity features,

* ``gpam`` (``configs/gpam/wordnet-rel.yaml``): four semi-factual views, Gaussian prototypes, adaptive margins;
* ``protonet-threshold`` (``configs/protonet_nota/wordnet-rel.yaml``): ProtoNet, NOTA by a distance threshold
  tuned on the validation episodes (the baseline of the claims);
* ``protonet-logit`` (``configs/protonet_nota/wordnet-rel-logit.yaml``): ProtoNet with the FewRel toolkit's NOTA
  logit;
* the ablations ``gpam-no-views`` (main view only), ``gpam-point`` (point prototypes: no variance) and
  ``gpam-fixed-margin`` (one radius for every class);

and tests each best-on-validation checkpoint on the same fixed test episodes at NOTA rates 0.15, 0.3 and 0.5
(``data.eval_seed`` fixed, ``seed`` varies the initialisation and the training episodes). Reported per method,
setting and rate: accuracy over N + 1 classes (mean over seeds; 95% CI over test episodes of the seed-averaged
accuracy, since every seed sees the same episodes) and NOTA F1 pooled over all test queries (mean over seeds).
Claims pair the seed-averaged per-episode accuracies of two methods on the same episodes.

    python benchmarks/gpam_wordnet_rel.py --quick      # end-to-end check -> gpam_wordnet_rel_quick.json
    python benchmarks/gpam_wordnet_rel.py --export     # the README table; registers gpam-minilm-wordnet-rel-5w{1,5}s

The entity features of every instance in every view are computed once per process before training (the encoder
is frozen), so every run after that trains only the projection and GPAM's few variance and boundary parameters.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import CSV_LOGGER, claim, export_and_register, fit_then_test_best, write_results

from zoo.cli import build_cli
from zoo.metrics import mean_ci95

GPAM_CONFIG = "configs/gpam/wordnet-rel.yaml"
PROTO_CONFIG = "configs/protonet_nota/wordnet-rel.yaml"
PROTO_LOGIT_CONFIG = "configs/protonet_nota/wordnet-rel-logit.yaml"
METHODS = {
    "gpam": (GPAM_CONFIG, []),
    "protonet-threshold": (PROTO_CONFIG, []),
    "protonet-logit": (PROTO_LOGIT_CONFIG, []),
    "gpam-no-views": (GPAM_CONFIG, ["--model.views=[main]"]),
    "gpam-point": (GPAM_CONFIG, ["--model.prototype=point"]),
    "gpam-fixed-margin": (GPAM_CONFIG, ["--model.adaptive_margin=false"]),
}
ABLATIONS = {"gpam-no-views": "no-views", "gpam-point": "point-prototypes", "gpam-fixed-margin": "fixed-margin"}
RATES = (0.15, 0.3, 0.5)
COMMAND = "python benchmarks/gpam_wordnet_rel.py"


def run(method: str, shot: int, seed: int, episodes: dict[str, int], epochs: int, save_dir: str,
        data_args: list[str]) -> dict[str, Any]:
    config, extra = METHODS[method]
    overrides = [*data_args, f"--data.k_shot={shot}", f"--data.seed={seed}", "--data.eval_seed=0", f"--seed_everything={seed}",
                 f"--trainer.max_epochs={epochs}", f"--data.train_episodes={episodes['train']}",
                 f"--data.val_episodes={episodes['val']}", f"--data.test_episodes={episodes['test']}", *extra]
    cli, train_seconds = fit_then_test_best(ROOT / config, overrides, save_dir)
    m = cli.trainer.callback_metrics
    out: dict[str, Any] = {"method": method, "shot": shot, "seed": seed, "train_seconds": round(train_seconds, 1),
                           "best_val_acc": float(cli.trainer.checkpoint_callback.best_model_score), "rates": {}}
    for rate in RATES:
        key = f"test/nota{rate:g}"
        rows = cli.model.episode_records[key]
        out["rates"][f"{rate:g}"] = {"acc": float(m[f"{key}/acc"]), "ci95": float(m[f"{key}/acc_ci95"]),
                                     "nota_f1": float(m[f"{key}/nota_f1"]),
                                     "nota_precision": float(m[f"{key}/nota_precision"]),
                                     "nota_recall": float(m[f"{key}/nota_recall"]),
                                     "per_episode": [r["acc"] for r in rows]}
    if hasattr(cli.model, "threshold"):
        out["threshold"] = float(cli.model.threshold)
    out["_cli"] = cli
    return out


def seed_averaged(rows: list[dict[str, Any]], rate: str) -> torch.Tensor:
    """Per test episode, the accuracy averaged over the runs (seeds): every run saw the same episodes."""
    return torch.tensor([r["rates"][rate]["per_episode"] for r in rows], dtype=torch.float64).mean(0)


def summarize(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    table: dict[str, Any] = {}
    claims: list[dict[str, Any]] = []
    n_seeds = len({r["seed"] for r in rows})
    for shot in sorted({r["shot"] for r in rows}):
        runs = {m: [r for r in rows if r["shot"] == shot and r["method"] == m] for m in METHODS}
        for method, rs in runs.items():
            if not rs:
                continue
            for rate in (f"{x:g}" for x in RATES):
                mean, ci = mean_ci95(seed_averaged(rs, rate))
                f1 = [r["rates"][rate]["nota_f1"] for r in rs]
                table[f"5w{shot}s/{method}/nota{rate}"] = {
                    "acc": mean, "ci95_over_episodes": ci, "seed_means": [r["rates"][rate]["acc"] for r in rs],
                    "nota_f1": sum(f1) / len(f1), "nota_f1_seeds": f1, "seeds": [r["seed"] for r in rs],
                    "train_seconds_mean": sum(r["train_seconds"] for r in rs) / len(rs)}
        if runs["gpam"] and runs["protonet-threshold"]:
            for rate in (f"{x:g}" for x in RATES):
                claims.append(claim(f"gpam-vs-protonet-threshold-5w{shot}s-nota{rate}",
                                    f"GPAM is more accurate over N+1 classes than ProtoNet with a validation-tuned "
                                    f"NOTA threshold, 5-way {shot}-shot, NOTA rate {rate}",
                                    seed_averaged(runs["gpam"], rate).tolist(),
                                    seed_averaged(runs["protonet-threshold"], rate).tolist(), seeds=n_seeds, trained=True))
        if runs["gpam"] and runs["protonet-logit"]:
            claims.append(claim(f"gpam-vs-protonet-logit-5w{shot}s-nota0.3",
                                f"GPAM is more accurate than ProtoNet with the FewRel NOTA logit, 5-way {shot}-shot, "
                                "NOTA rate 0.3", seed_averaged(runs["gpam"], "0.3").tolist(),
                                seed_averaged(runs["protonet-logit"], "0.3").tolist(), seeds=n_seeds, trained=True))
        for method, name in ABLATIONS.items():
            if runs["gpam"] and runs[method]:
                claims.append(claim(f"gpam-vs-{name}-5w{shot}s-nota0.3",
                                    f"full GPAM is more accurate than its {name} ablation, 5-way {shot}-shot, NOTA "
                                    "rate 0.3", seed_averaged(runs["gpam"], "0.3").tolist(),
                                    seed_averaged(runs[method], "0.3").tolist(), seeds=n_seeds, trained=True))
    return table, claims


def export(result: dict[str, Any], shot: int, episodes: dict[str, int], epochs: int, command: str) -> dict[str, Any]:
    """Register a GPAM run's trainable weights (the frozen MiniLM is not stored; its sha256 is checked on load)."""
    name = f"gpam-minilm-wordnet-rel-5w{shot}s"
    r03 = result["rates"]["0.3"]
    entry = export_and_register(
        name, {"cli": result["_cli"], "test_acc": r03["acc"], "test_ci95": r03["ci95"],
               "test_episodes": len(r03["per_episode"]), "best_val_acc": result["best_val_acc"],
               "train_seconds": result["train_seconds"]},
        system="gpam", config=str(ROOT / GPAM_CONFIG),
        setting=f"WordNet-Rel 5-way {shot}-shot, 15 queries, NOTA rate 0.3 (D-Proto protocol), frozen MiniLM",
        command=f"{command}  (seed {result['seed']}, best validation accuracy of the seeds)",
        notes=f"accuracy over N+1 at NOTA 0.3; NOTA F1 {r03['nota_f1']:.4f}; train with: zoo fit --config "
              f"{GPAM_CONFIG} --data.k_shot={shot} --trainer.max_epochs={epochs} "
              f"--data.train_episodes={episodes['train']} --data.val_episodes={episodes['val']}",
        overrides=[f"--data.k_shot={shot}", "--data.eval_seed=0", f"--data.test_episodes={episodes['test']}"])
    print(f"registered {name}: {entry.metrics}", flush=True)
    return {name: entry.__dict__}


def warm_features(data_args: list[str]) -> float:
    """Encode every instance of every split in every view once (frozen encoder: cached for all later runs)."""
    cli = build_cli(["fit", "--config", str(ROOT / GPAM_CONFIG), "--config", CSV_LOGGER, *data_args], run=False)
    cli.datamodule.setup()
    start = time.perf_counter()
    n = sum(cli.model.encode_items(src) for src in cli.datamodule.sources.values())
    seconds = time.perf_counter() - start
    print(f"encoded {n} instances x 4 views in {seconds:.0f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, a few episodes: checks the pipeline")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-episodes", type=int, default=100)
    parser.add_argument("--val-episodes", type=int, default=40)
    parser.add_argument("--test-episodes", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while training (episodes are tiny: more threads only add overhead)")
    parser.add_argument("--export", action="store_true", help="register the best-on-validation GPAM seed per setting")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    data_args = []
    if args.quick:  # 20 instances per relation: the encoder pass is half the real one
        args.seeds, args.epochs = args.seeds[:1], 1
        args.train_episodes, args.val_episodes, args.test_episodes = 10, 6, 20
        data_args = ["--data.min_per_relation=20", "--data.max_per_relation=20"]
    episodes = {"train": args.train_episodes, "val": args.val_episodes, "test": args.test_episodes}
    encode_seconds = warm_features(data_args)
    torch.set_num_threads(args.threads)
    name = "gpam_wordnet_rel_quick" if args.quick else "gpam_wordnet_rel"
    setting = {"episodes": episodes, "epochs": args.epochs, "seeds": args.seeds, "eval_seed": 0, "n_way": 5,
               "queries_per_episode": 15, "train_na_rate": 0.5, "val_na_rate": 0.3, "test_na_rates": list(RATES),
               "protocol": "dproto", "encoder": "all-MiniLM-L6-v2, frozen, entity-span pooling, max_length 128",
               "encode_seconds": round(encode_seconds, 1), "torch_threads_training": args.threads,
               "configs": {m: [c, *o] for m, (c, o) in METHODS.items()}}
    rows: list[dict[str, Any]] = []
    exports: dict[str, Any] = {}

    def save(complete: bool) -> Path:
        """Results so far (written after every run, so a run cut short by its time budget still leaves them)."""
        summary, claims = summarize(rows)
        load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
        return write_results(name, {"command": command, "complete": complete, "setting": setting,
                                    "summary": summary, "claims": claims, "runs": rows,
                                    "registry_entries": exports, "load_average_at_end": load})

    # the claims' comparison first (both settings), then the other baseline and the ablations
    first = [m for m in args.methods if m in ("gpam", "protonet-threshold")]
    order = [(first, shot) for shot in args.shots] + [([m for m in args.methods if m not in first], shot)
                                                     for shot in args.shots]
    with tempfile.TemporaryDirectory() as tmp:
        for methods, shot in order:
            for seed in args.seeds:
                for method in methods:
                    r = run(method, shot, seed, episodes, args.epochs, tmp, data_args)
                    rows.append(r)
                    print(f"5-way {shot}-shot {method:18s} seed {seed}: " + ", ".join(
                        f"NOTA {k}: {100 * v['acc']:.2f} +- {100 * v['ci95']:.2f} % (F1 {v['nota_f1']:.3f})"
                        for k, v in r["rates"].items()) + f"; train {r['train_seconds']:.0f} s", flush=True)
            if args.export and not args.quick and "gpam" in methods:
                best = max((r for r in rows if r["shot"] == shot and r["method"] == "gpam"),
                           key=lambda r: r["best_val_acc"])
                exports.update(export(best, shot, episodes, args.epochs, command))
            for r in rows:
                r.pop("_cli", None)  # each holds a model
            save(complete=False)
    path = save(complete=True)
    print(f"wrote {path}")
    for c in summarize(rows)[1]:
        print(f"{c['id']}: {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points, holds={c['holds']}")


if __name__ == "__main__":
    main()
