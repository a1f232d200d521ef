"""Meta-RTL vs its baselines on WordNet-QA, leave-one-task-out, low-resource targets, same fixed test items.

For each target task, target size and seed this script trains, through the real CLI config
(``configs/meta_rtl/wordnet-qa.yaml``, the other six tasks as sources), every method of ``--methods``:

* ``meta_rtl``: the LSTM policy's source weights, REINFORCE-trained on target rewards (the system);
* ``uniform``: the same Reptile meta-transfer with equal weights (the paper's main baseline);
* ``exp3``: an EXP3 bandit over the sources on the same rewards (a previous task-selection strategy);
* ``multitask``: joint training on all sources and the target, then fine-tuning;
* ``target_only``: fine-tuning on the target alone;

each followed by fine-tuning on the target subset and selection on the target's 100 dev items, then tested on
the target's 300 fixed test items (``seed`` draws the target subset, the batches and the source draws; the test
items are the same for every run). Reported: accuracy per (target, size, method) as the mean over seeds, with
the 95% CI over test items of the seed-averaged correctness; paired differences on the same items (targets
pooled) per size; the source weights Meta-RTL ends with. Checks of the benchmark itself: a choice-only scorer
(a linear score of the choice embedding alone, trained on each task's train split) should stay near chance
(25%), and the untrained encoder's cosine(prompt, choice) shows how far embedding similarity alone gets.

    python benchmarks/meta_rtl_wordnet_qa.py --quick   # end-to-end check -> meta_rtl_wordnet_qa_quick.json
    python benchmarks/meta_rtl_wordnet_qa.py           # the README table; registers meta-rtl-minilm-wordnet-qa

The budget (targets, sizes, seeds, iterations) is in the results file; the first run also encodes the ~21k
prompts and choices with MiniLM and caches the vectors under $METAZOO_DATA/wordnet_qa.
"""

from __future__ import annotations

import argparse
import json
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

from common import claim, export_and_register, fit_then_test_best, write_results

from datamodules.cache import data_root
from datamodules.qa.wordnet_qa import TASKS, load_or_build
from zoo.meta_rtl import load_embedding_cache, save_embedding_cache
from zoo.metrics import mean_ci95, paired_difference_ci95
from zoo.text_encoder import TextEncoder

CONFIG = "configs/meta_rtl/wordnet-qa.yaml"
COMMAND = "python benchmarks/meta_rtl_wordnet_qa.py"
METHODS = ("meta_rtl", "uniform", "exp3", "multitask", "target_only")
REGISTRY_NAME = "meta-rtl-minilm-wordnet-qa"


def encoder_with_cache(tasks: dict) -> tuple[TextEncoder, dict[str, float]]:
    """The config's frozen MiniLM with every prompt and choice of the benchmark in its (shared) cache."""
    enc = TextEncoder(pooling="mean", max_length=48, freeze=True)
    path = data_root() / "wordnet_qa" / f"embeddings-{enc.weights_sha256()[:12]}-48.pt"
    start = time.perf_counter()
    loaded = load_embedding_cache(enc, path)
    texts = list(dict.fromkeys([x.prompt for t in tasks.values() for s in ("train", "dev", "test")
                                for x in t.split(s)] + [c for t in tasks.values() for s in ("train", "dev", "test")
                                                        for x in t.split(s) for c in x.choices]))
    enc.pooled(texts)
    if len(texts) > loaded:
        save_embedding_cache(enc, path)
    return enc, {"texts": len(texts), "loaded_from_cache": loaded, "seconds": round(time.perf_counter() - start, 1)}


def embed(enc: TextEncoder, items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = enc.pooled([x.prompt for x in items])
    c = enc.pooled([ch for x in items for ch in x.choices]).reshape(len(items), len(items[0].choices), -1)
    return q, c, torch.tensor([x.answer for x in items])


def benchmark_checks(enc: TextEncoder, tasks: dict, steps: int = 300) -> dict[str, Any]:
    """Per task: a choice-only linear scorer's test accuracy (should be near 1/4) and cosine(prompt, choice)'s."""
    out = {}
    for name, task in tasks.items():
        q_tr, c_tr, y_tr = embed(enc, task.train)
        q_te, c_te, y_te = embed(enc, task.test)
        torch.manual_seed(0)
        w = torch.zeros(c_tr.shape[-1], requires_grad=True)
        opt = torch.optim.Adam([w], lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(c_tr @ w, y_tr).backward()
            opt.step()
        choice_only = ((c_te @ w.detach()).argmax(-1) == y_te).float()
        cosine = (torch.nn.functional.cosine_similarity(q_te[:, None], c_te, dim=-1).argmax(-1) == y_te).float()
        out[name] = {"choice_only": mean_ci95(choice_only), "cosine": mean_ci95(cosine),
                     "sizes": task.sizes(), "example": {"prompt": task.test[0].prompt,
                                                        "choices": list(task.test[0].choices),
                                                        "answer": task.test[0].answer}}
    return out


def run(method: str, target: str, size: int, seed: int, args: argparse.Namespace, save_dir: str) -> dict[str, Any]:
    sources = json.dumps([t for t in TASKS if t != target])
    overrides = [f"--data.target={target}", f"--data.target_size={size}", f"--data.seed={seed}",
                 f"--seed_everything={seed}", f"--model.seed={seed}", f"--data.sources={sources}",
                 f"--model.sources={sources}", f"--model.strategy={method}",
                 f"--model.meta_iterations={args.meta_iterations}", f"--trainer.max_epochs={args.epochs}",
                 f"--data.iterations_per_epoch={args.iterations_per_epoch}"]
    cli, train_seconds = fit_then_test_best(ROOT / CONFIG, overrides, save_dir)
    m = cli.trainer.callback_metrics
    records = cli.model.item_records["test"]
    out = {"method": method, "target": target, "size": size, "seed": seed, "test_acc": float(m["test/acc"]),
           "test_ci95": float(m["test/acc_ci95"]), "test_items": len(records),
           "best_val_acc": float(cli.trainer.checkpoint_callback.best_model_score),
           "train_seconds": round(train_seconds, 1), "per_item": [records[i] for i in sorted(records)],
           "overrides": overrides}
    history = cli.model.weight_history
    if history:
        w = torch.tensor(history)
        r = torch.tensor(cli.model.reward_history)
        names = json.loads(sources)
        out["final_weights"] = dict(zip(names, w[-1].tolist()))
        out["mean_weights"] = dict(zip(names, w.mean(0).tolist()))
        drawn = (r != 0).sum(0).clamp_min(1)
        out["mean_reward_when_drawn"] = dict(zip(names, (r.sum(0) / drawn).tolist()))
    out["_cli"] = cli
    return out


def seed_mean(runs: list[dict[str, Any]]) -> torch.Tensor:
    return torch.tensor([r["per_item"] for r in runs], dtype=torch.float64).mean(0)


def summarize(rows: list[dict[str, Any]], sizes: list[int], targets: list[str]) -> tuple[dict, list]:
    table: dict[str, Any] = {}
    for target in targets:
        for size in sizes:
            for method in dict.fromkeys(r["method"] for r in rows):
                runs = [r for r in rows if (r["target"], r["size"], r["method"]) == (target, size, method)]
                if runs:
                    mean, ci = mean_ci95(seed_mean(runs))
                    table[f"{target}/{size}/{method}"] = {"mean": mean, "ci95_over_items": ci,
                                                          "seed_means": [r["test_acc"] for r in runs]}
    pooled: dict[str, Any] = {}
    claims = []
    for size in sizes:
        def items(method: str) -> torch.Tensor | None:
            parts = []
            for target in targets:
                runs = [r for r in rows if (r["target"], r["size"], r["method"]) == (target, size, method)]
                if not runs:
                    return None
                parts.append(seed_mean(sorted(runs, key=lambda r: r["seed"])))
            return torch.cat(parts)

        rtl = items("meta_rtl")
        for base in ("uniform", "target_only", "exp3", "multitask"):
            other = items(base)
            if rtl is None or other is None:
                continue
            d, ci = paired_difference_ci95(rtl, other)
            pooled[f"{size}/meta_rtl - {base}"] = {"mean": d, "ci95": ci, "n": len(rtl)}
            if base in ("uniform", "target_only"):
                suffix = "" if size == min(sizes) else f"@{size}"
                label = base.replace("_", "-")
                claims.append(claim(f"meta-rtl-vs-{label}-wordnet-qa{suffix}",
                                    f"Meta-RTL beats {base.replace('_', '-')} on WordNet-QA targets "
                                    f"({', '.join(targets)}) with {size} target items (test accuracy, paired over "
                                    f"test items, seed-averaged)", rtl.tolist(), other.tolist(),
                                    seeds=len({r["seed"] for r in rows}), trained=True))
    return {"per_target": table, "pooled_over_targets": pooled}, claims


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one target, one seed, few iterations")
    parser.add_argument("--targets", nargs="+", default=["antonym", "hypernym"], choices=list(TASKS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--all-methods-sizes", type=int, nargs="+", default=[32],
                        help="sizes at which exp3 and multitask run too (elsewhere: meta_rtl, uniform, target_only)")
    parser.add_argument("--meta-iterations", type=int, default=100)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads: the steps are tiny, and on shared cores one thread is ~10x faster")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=12.0,
                        help="start no run after this many minutes (the heavy-job budget); skipped runs are counted")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])  # as run: it names its own budget
    if args.quick:
        args.targets, args.sizes, args.seeds = args.targets[:1], [32], [0]
        args.meta_iterations, args.iterations_per_epoch, args.epochs = 20, 10, 3
    tasks, build_dir = load_or_build()
    enc, encoding = encoder_with_cache(tasks)
    print(f"encoder cache: {encoding}", flush=True)
    checks = benchmark_checks(enc, tasks)
    for name, c in checks.items():
        print(f"{name:14s} choice-only {100 * c['choice_only'][0]:.1f} +- {100 * c['choice_only'][1]:.1f} %, "
              f"cosine {100 * c['cosine'][0]:.1f} %", flush=True)
    rows: list[dict[str, Any]] = []
    export = None
    start = time.perf_counter()
    skipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        # smallest size first, then seed by seed: a run stopped by --max-minutes still has every method at the
        # sizes it finished, on every target
        for size in sorted(args.sizes):
            for seed in args.seeds:
                for target in args.targets:
                    for method in args.methods:
                        if method in ("exp3", "multitask") and size not in args.all_methods_sizes:
                            continue
                        if (time.perf_counter() - start) / 60 > args.max_minutes:
                            skipped += 1
                            continue
                        r = run(method, target, size, seed, args, tmp)
                        keep = (not args.quick and not args.no_export and method == "meta_rtl" and target ==
                                args.targets[0] and size == min(args.sizes)
                                and (export is None or r["best_val_acc"] > export["best_val_acc"]))
                        if keep:
                            export = r
                        else:
                            r.pop("_cli")
                        rows.append(r)
                        print(f"{target:10s} n={size:4d} seed {seed} {method:12s} {100 * r['test_acc']:.2f} +- "
                              f"{100 * r['test_ci95']:.2f} % (dev {100 * r['best_val_acc']:.1f}, "
                              f"{r['train_seconds']:.0f} s)", flush=True)
        summary, claims = summarize(rows, args.sizes, args.targets)
        entry = None
        if export is not None:
            entry = export_and_register(
                REGISTRY_NAME, {**export, "cli": export.pop("_cli"), "test_episodes": export["test_items"]},
                system="meta_rtl", config=str(ROOT / CONFIG),
                setting=f"WordNet-QA target {export['target']} with {export['size']} items, sources the other six "
                        "tasks, frozen MiniLM + trained scorer head",
                command=f"{command}  (seed {export['seed']}, best target-dev accuracy of the seeds)",
                notes=f"train with: zoo fit --config {CONFIG} " + " ".join(export["overrides"]),
                overrides=export["overrides"])
            print(f"registered {REGISTRY_NAME}: {entry.metrics}", flush=True)
        for r in rows:
            r.pop("_cli", None)
    name = "meta_rtl_wordnet_qa_quick" if args.quick else "meta_rtl_wordnet_qa"
    setting = {"targets": args.targets, "sizes": args.sizes, "seeds": args.seeds, "methods": args.methods,
               "all_methods_sizes": args.all_methods_sizes,
               "meta_iterations": args.meta_iterations, "iterations_per_epoch": args.iterations_per_epoch,
               "epochs": args.epochs, "config": CONFIG, "threads": args.threads, "dev_items": 100, "test_items": 300,
               "encoder": "all-MiniLM-L6-v2, frozen, mean pooling, max_length 48 (cached)",
               "build": str(build_dir.name), "total_minutes": round((time.perf_counter() - start) / 60, 1),
               "max_minutes": args.max_minutes, "runs_skipped_for_time": skipped}
    path = write_results(name, {"command": command, "setting": setting, "encoding": encoding, "checks": checks,
                                "summary": summary, "claims": claims, "runs": rows,
                                "registry_entry": entry.name if entry else None,
                                "load_average_at_end": [round(x, 2) for x in os.getloadavg()]})
    print(f"wrote {path}")
    for key, e in summary["pooled_over_targets"].items():
        print(f"{key}: {100 * e['mean']:+.2f} +- {100 * e['ci95']:.2f} points (n = {e['n']})")
    for c in claims:
        print(f"{c['id']}: {'holds' if c['holds'] else 'does not hold'}")


if __name__ == "__main__":
    main()
