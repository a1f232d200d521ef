"""RAML vs ProtoNet-text on the embedded WordNet benchmark, 5-way 1-shot and 5-shot, same encoder, same episodes.

For each shot setting and each seed this script trains, through the real CLI configs,

* ``protonet-text``: ProtoNet on the frozen MiniLM with a trainable identity-initialised linear map
  (``configs/protonet_text/wordnet.yaml``): the baseline without retrieval;
* ``raml``: RAML on the same frozen MiniLM, P passages per query from the WordNet passage corpus
  (``configs/raml/wordnet.yaml``);
* ``raml-p0`` (ablation): the same RAML architecture with no retrieval (one view: the query alone), which
  separates what retrieval adds from what the fusion block adds;
* ``raml+proto`` ([INTERP] variant, ``proto_logit_weight=1``): RAML's fused scores added to the ProtoNet logits,
  the score head starting at zero, i.e. ProtoNet plus a learned retrieval-conditioned correction;

and tests each best-on-validation checkpoint on the *same* fixed test episodes (``data.eval_seed`` is fixed;
``seed`` varies the initialisation and the training episodes). ``protonet-text (untrained)`` is the frozen
encoder with no training at all. Reported: per run mean +- 95% CI over the test episodes; per method the mean
over seeds with the 95% CI over test episodes of the seed-averaged accuracy (every seed sees the same episodes,
so pooling runs as if independent would understate the interval); the paired difference RAML -
ProtoNet-text on the same episodes (``zoo.metrics.paired_difference_ci95``); and retrieval's share of RAML's
training step time (wall time of retrieval, i.e. query embedding plus FAISS search, over the wall time of the
training steps; first-epoch and cached-later epochs together).

    python benchmarks/raml_wordnet.py --quick        # end-to-end check, a few episodes -> raml_wordnet_quick.json
    python benchmarks/raml_wordnet.py --export       # the README table: 3 seeds x 2 settings x 3 methods, 2 epochs
                                                     # of 50 training episodes, 30 validation and 200 fixed test
                                                     # episodes (about 1.5 hours on one core); registers
                                                     # raml[-proto]-minilm-wordnet-5w{1,5}s (trainable parts only)
    python benchmarks/raml_wordnet.py --epochs 10 --train-episodes 100 --test-episodes 600 --methods \
        protonet-text raml raml-p0 raml+proto        # the configs' own budget and the no-retrieval ablation (hours)

The budget is small because a CPU run of RAML encodes every (query, passage) view with MiniLM; it is recorded in
the results file and quoted with the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import CSV_LOGGER, export_and_register, write_results

from zoo.cli import build_cli
from zoo.metrics import mean_ci95, paired_difference_ci95

RAML_CONFIG = "configs/raml/wordnet.yaml"
PROTO_CONFIG = "configs/protonet_text/wordnet.yaml"
METHODS = {
    "protonet-text": (PROTO_CONFIG, []),
    "raml": (RAML_CONFIG, []),
    "raml-p0": (RAML_CONFIG, ["--model.n_passages=0"]),
    "raml+proto": (RAML_CONFIG, ["--model.proto_logit_weight=1.0"]),
}
COMMAND = "python benchmarks/raml_wordnet.py"
EXPORTS = {"raml": "raml", "raml+proto": "raml-proto"}  # method -> registry name prefix


class StepTimer(pl.Callback):
    """Wall time of every training step (forward, backward, optimiser), for retrieval's share of it."""

    def __init__(self) -> None:
        self.seconds, self.steps, self._t = 0.0, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._t
        self.steps += 1


def run(method: str, shot: int, seed: int, episodes: dict[str, int], epochs: int, save_dir: str,
        train: bool = True) -> dict[str, Any]:
    config, extra = METHODS[method]
    overrides = [f"--data.k_shot={shot}", f"--data.seed={seed}", "--data.eval_seed=0", f"--seed_everything={seed}",
                 f"--trainer.max_epochs={epochs}", f"--data.train_episodes={episodes['train']}",
                 f"--data.val_episodes={episodes['val']}", f"--data.test_episodes={episodes['test']}", *extra]
    cli = build_cli(["fit", "--config", str(ROOT / config), "--config", CSV_LOGGER,
                     f"--trainer.logger.init_args.save_dir={save_dir}", "--trainer.enable_progress_bar=false",
                     "--trainer.enable_model_summary=false", *overrides], run=False)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    start = time.perf_counter()
    if train:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    train_seconds = time.perf_counter() - start
    train_retrieval = float(getattr(cli.model, "timing", {}).get("train_retrieval_s", 0.0))
    test_start = time.perf_counter()
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best" if train else None, verbose=False)
    test_seconds = time.perf_counter() - test_start
    m = cli.trainer.callback_metrics
    per_episode = [r["acc"] for r in cli.model.episode_records["test"]]
    out = {"method": method, "shot": shot, "seed": seed, "test_acc": float(m["test/acc"]),
           "test_ci95": float(m["test/acc_ci95"]), "test_episodes": len(per_episode),
           "train_seconds": round(train_seconds, 1), "test_seconds": round(test_seconds, 1),
           "train_steps": timer.steps, "per_episode": per_episode}
    if train and cli.trainer.checkpoint_callback is not None and cli.trainer.checkpoint_callback.best_model_score:
        out["best_val_acc"] = float(cli.trainer.checkpoint_callback.best_model_score)
    if method.startswith("raml") and timer.seconds > 0:
        out["retrieval_train_seconds"] = round(train_retrieval, 2)
        out["train_step_seconds"] = round(timer.seconds, 2)
        out["retrieval_share_of_train_step"] = train_retrieval / timer.seconds
        out["trainable_parameters"] = sum(p.numel() for p in cli.model.parameters() if p.requires_grad)
        out["retriever"] = {k: (round(v, 2) if isinstance(v, float) else v)
                            for k, v in cli.model.retriever.stats.items()} if cli.model.retriever else None
    out["_cli"] = cli
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for shot in sorted({r["shot"] for r in rows}):
        for method in dict.fromkeys(r["method"] for r in rows if r["shot"] == shot):
            runs = [r for r in rows if r["shot"] == shot and r["method"] == method]
            # every run is tested on the same episodes: average each episode over seeds, then the CI over episodes
            per_episode = torch.tensor([r["per_episode"] for r in runs], dtype=torch.float64).mean(0)
            mean, ci = mean_ci95(per_episode)
            seed_means = torch.tensor([r["test_acc"] for r in runs], dtype=torch.float64)
            entry = {"mean": mean, "ci95_over_episodes": ci, "seeds": [r["seed"] for r in runs],
                     "seed_means": seed_means.tolist(),
                     "seed_std": float(seed_means.std()) if len(runs) > 1 else 0.0}
            shares = [r["retrieval_share_of_train_step"] for r in runs if "retrieval_share_of_train_step" in r]
            if shares:
                entry["retrieval_share_of_train_step"] = sum(shares) / len(shares)
            table[f"5w{shot}s/{method}"] = entry
        base = {r["seed"]: r for r in rows if r["shot"] == shot and r["method"] == "protonet-text"}
        for method in ("raml", "raml-p0", "raml+proto"):
            pairs = [(r, base[r["seed"]]) for r in rows if r["shot"] == shot and r["method"] == method
                     and r["seed"] in base]
            if pairs:
                a = torch.tensor([r["per_episode"] for r, _ in pairs], dtype=torch.float64).mean(0)
                b = torch.tensor([p["per_episode"] for _, p in pairs], dtype=torch.float64).mean(0)
                d, dci = paired_difference_ci95(a, b)
                table[f"5w{shot}s/{method} - protonet-text"] = {"mean": d, "ci95": dci}
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, a few episodes: checks the pipeline")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["protonet-text", "raml", "raml+proto"],
                        choices=list(METHODS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-episodes", type=int, default=50)
    parser.add_argument("--val-episodes", type=int, default=30)
    parser.add_argument("--test-episodes", type=int, default=200)
    parser.add_argument("--export", action="store_true",
                        help="register the best-on-validation seed of raml and raml+proto for each setting")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = args.seeds[:2], 1
        args.train_episodes, args.val_episodes, args.test_episodes = 6, 6, 30
    episodes = {"train": args.train_episodes, "val": args.val_episodes, "test": args.test_episodes}
    rows: list[dict[str, Any]] = []
    exports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shot in args.shots:
            zero = run("protonet-text", shot, args.seeds[0], episodes, args.epochs, tmp, train=False)
            zero["method"] = "protonet-text (untrained)"
            zero.pop("_cli")
            rows.append(zero)
            for seed in args.seeds:
                for method in args.methods:
                    r = run(method, shot, seed, episodes, args.epochs, tmp)
                    if not (args.export and method in EXPORTS):
                        r.pop("_cli")  # each holds a model; keep only what may be exported
                    rows.append(r)
                    share = r.get("retrieval_share_of_train_step")
                    print(f"5-way {shot}-shot {method:14s} seed {seed}: {100 * r['test_acc']:.2f} +- "
                          f"{100 * r['test_ci95']:.2f} % ({r['test_episodes']} episodes, train "
                          f"{r['train_seconds'] / 60:.1f} min" + (f", retrieval {100 * share:.1f}% of step time)"
                                                                  if share is not None else ")"), flush=True)
            if args.export and not args.quick:
                for method in EXPORTS:
                    runs = [r for r in rows if r["shot"] == shot and r["method"] == method]
                    if runs:
                        best = max(runs, key=lambda r: r.get("best_val_acc", 0.0))  # chosen on validation
                        exports.update(export(best, shot, method, episodes, args.epochs))
            for r in rows:
                r.pop("_cli", None)
    summary = summarize(rows)
    name = "raml_wordnet_quick" if args.quick else "raml_wordnet"
    setting = {"episodes": episodes, "epochs": args.epochs, "seeds": args.seeds, "eval_seed": 0, "n_way": 5,
               "q_query": 5, "encoder": "all-MiniLM-L6-v2, frozen, mean pooling, max_length 64",
               "raml": "P=3 passages, multiview fusion, joint view encoding, views of 96 tokens, flat cosine index",
               "configs": {"raml": RAML_CONFIG, "protonet-text": PROTO_CONFIG}}
    # the machine is shared: the load average says how far the timings are from an idle machine's
    load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
    path = write_results(name, {"command": COMMAND + (" --quick" if args.quick else ""), "setting": setting,
                                "summary": summary, "runs": rows, "registry_entries": exports,
                                "load_average_at_end": load})
    print(f"wrote {path}\n")
    print("| setting | method | test accuracy, % (95% CI, episodes) | per-seed means | retrieval share of step |")
    print("|---|---|---|---|---|")
    for key, e in summary.items():
        if " - " in key:
            continue
        s, method = key.split("/", 1)
        share = e.get("retrieval_share_of_train_step")
        print(f"| {s} | {method} | {100 * e['mean']:.2f} +- {100 * e['ci95_over_episodes']:.2f} | "
              + ", ".join(f"{100 * v:.1f}" for v in e["seed_means"]) + " | "
              + (f"{100 * share:.1f}% |" if share is not None else "- |"))
    print()
    for key, e in summary.items():
        if " - " in key:
            print(f"paired difference {key}: {100 * e['mean']:+.2f} +- {100 * e['ci95']:.2f} points")


def export(result: dict[str, Any], shot: int, method: str, episodes: dict[str, int], epochs: int) -> dict[str, Any]:
    """Write the trainable weights of a RAML run as safetensors and register them; returns the registry entry.

    The frozen MiniLM is not in the file (``TextEncoder`` drops it from the state dict and checks its sha256 on
    load), so the checkpoint holds the fusion block and score head only.
    """
    name = f"{EXPORTS[method]}-minilm-wordnet-5w{shot}s"
    variant = "" if method == "raml" else ", [INTERP] fused scores added to the ProtoNet logits"
    entry = export_and_register(
        name, {**result, "cli": result["_cli"], "best_val_acc": result.get("best_val_acc", 0.0)}, system="raml",
        config=str(ROOT / RAML_CONFIG), setting=f"WordNet 5-way {shot}-shot 5-query, frozen MiniLM, P=3{variant}",
        command=f"{COMMAND} --export  (seed {result['seed']}, best validation accuracy of the seeds)",
        notes=f"train with: zoo fit --config {RAML_CONFIG} --data.k_shot={shot} {' '.join(METHODS[method][1])} "
              f"--trainer.max_epochs={epochs} --data.train_episodes={episodes['train']} "
              f"--data.val_episodes={episodes['val']}",
        overrides=[f"--data.k_shot={shot}", "--data.eval_seed=0", f"--data.test_episodes={episodes['test']}",
                   *METHODS[method][1]])
    print(f"registered {name}: {entry.metrics}", flush=True)
    return {name: entry.__dict__}


if __name__ == "__main__":
    main()
