"""Meta-RTL vs its baselines on WordNet-QA, leave-one-task-out, low-resource targets, same fixed test items.

For each target task, target size and seed this script trains, through the real CLI config
(``configs/meta_rtl/wordnet-qa.yaml``, the other six tasks as sources), every arm of ``--methods``:

* ``meta_rtl``: the LSTM policy's source weights, REINFORCE-trained on target rewards (the system);
* ``frozen_policy``: the same system with ``policy_lr 0`` (uniform weights, Meta-RTL's epsilon-greedy draws);
* ``uniform``: the same Reptile meta-transfer with equal weights (the paper's main baseline);
* ``exp3``: an EXP3 bandit over the sources on the same rewards (a previous task-selection strategy);
* ``multitask``: joint training on all sources and the target, then fine-tuning;
* ``target_only``: fine-tuning on the target alone;
* ``meta_rtl_normalised``: Meta-RTL with rewards standardised per iteration on two target batches (an ablation
  of the reward switch);

and reports the untrained cosine(prompt, choice) scorer (the scorer's starting point: a fixed method). Every arm
has the same data, budget (``meta_iterations`` then fine-tuning, ``epochs`` x ``iterations_per_epoch`` steps) and
model selection: every epoch is a checkpoint candidate in every arm (``zoo.methods.meta_rtl``: one optimiser step per
training step in every strategy), the best on the target's 100 dev items is tested on its 300 fixed test items,
and each run records the epoch it selected and its validation curve. ``seed`` draws the target subset, the
batches and the source draws. Claims follow the comparison protocol: per seed the mean paired difference over
the targets' test items, a t-interval over seeds (``common.seed_claim``). Diagnostics: the source weights each
weighting arm ends with, and per source the t statistic of its reward centred on the other sources drawn with it
(does the reward carry signal?). Checks of the benchmark itself: a choice-only scorer (a linear score of the
choice embedding alone, trained on each task's train split) should stay near chance (25%).

``--mislabelled synonym definition`` makes two sources harmful (their training answers moved to a wrong choice,
``datamodules.qa.base.mislabel``) and writes ``meta_rtl_harmful_sources``, with the claim that Meta-RTL's
policy ends with them weighted below 1/K.

    python benchmarks/meta_rtl_wordnet_qa.py --quick                       # end-to-end check (*_quick.json)
    python benchmarks/meta_rtl_wordnet_qa.py --sizes 32 128 --max-minutes 20   # the README table
    python benchmarks/meta_rtl_wordnet_qa.py --mislabelled synonym definition --max-minutes 20

The budget (targets, sizes, seeds, iterations, minutes) is in the results file; the first run also encodes the
~21k prompts and choices with MiniLM and caches the vectors under $METAZOO_DATA/wordnet_qa.
"""

from __future__ import annotations

import argparse
import csv
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

from common import export_and_register, fit_then_test_best, seed_claim, selected_epoch, validation_curve, write_results

from safefiles import data_root
from datamodules.qa.wordnet_qa import TASKS, load_or_build
from zoo.nn.text_encoder import load_embedding_cache, save_embedding_cache
from zoo.training.metrics import mean_ci95
from zoo.nn.text_encoder import TextEncoder

CONFIG = "configs/meta_rtl/wordnet-qa.yaml"
COMMAND = "python benchmarks/meta_rtl_wordnet_qa.py"
# each arm's CLI options: the frozen-policy arm is Meta-RTL whose policy never learns (policy_lr 0: the LSTM's
# zero head keeps the weights uniform, but sources are drawn epsilon-greedy as Meta-RTL draws them)
ARMS = {"meta_rtl": ["--model.strategy=meta_rtl"],
        "frozen_policy": ["--model.strategy=meta_rtl", "--model.policy_lr=0"],
        "uniform": ["--model.strategy=uniform"], "exp3": ["--model.strategy=exp3"],
        "multitask": ["--model.strategy=multitask"], "target_only": ["--model.strategy=target_only"],
        # the reward switch as an ablation: rewards standardised per iteration, measured on two target batches
        "meta_rtl_normalised": ["--model.strategy=meta_rtl", "--model.reward_normalization=iteration",
                                "--data.reward_batches=2"]}
METHODS = tuple(ARMS)
RTL_NAMES = {"meta_rtl": "Meta-RTL", "frozen_policy": "Meta-RTL, frozen policy", "uniform": "uniform Reptile",
             "exp3": "EXP3 weighting", "multitask": "multi-task + fine-tune", "target_only": "target-only fine-tune",
             "cosine": "untrained cosine scorer", "meta_rtl_normalised": "Meta-RTL, normalised rewards"}
LABELS = {"uniform": "uniform", "target_only": "target-only", "frozen_policy": "frozen-policy",
          "cosine": "cosine", "exp3": "exp3", "multitask": "multitask", "meta_rtl_normalised": "normalised-rewards"}
CLAIMED = ("uniform", "target_only")  # claimed at every size; the other arms at the smallest
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
                     "cosine_per_item": cosine.tolist(),
                     "sizes": task.sizes(), "example": {"prompt": task.test[0].prompt,
                                                        "choices": list(task.test[0].choices),
                                                        "answer": task.test[0].answer}}
    return out


def run(method: str, target: str, size: int, seed: int, args: argparse.Namespace, save_dir: str) -> dict[str, Any]:
    """One training run of ``method`` (an arm of :data:`ARMS`) through the config; every arm gets the same data,
    reward options, budget and checkpoint candidates (every epoch, best target-dev accuracy)."""
    sources = json.dumps([t for t in TASKS if t != target])
    overrides = [f"--data.target={target}", f"--data.target_size={size}", f"--data.seed={seed}",
                 f"--seed_everything={seed}", f"--model.seed={seed}", f"--data.sources={sources}",
                 f"--model.sources={sources}",
                 f"--model.meta_iterations={args.meta_iterations}", f"--trainer.max_epochs={args.epochs}",
                 f"--data.iterations_per_epoch={args.iterations_per_epoch}",
                 f"--model.reward_normalization={args.reward_normalization}",
                 f"--data.reward_batches={args.reward_batches}",
                 f"--data.mislabelled_sources={json.dumps(args.mislabelled)}", *ARMS[method]]  # the arm's own last
    cli, train_seconds = fit_then_test_best(ROOT / CONFIG, overrides, save_dir)
    m = cli.trainer.callback_metrics
    records = cli.model.records["test"]  # one row per test item, sorted by index
    out = {"method": method, "target": target, "size": size, "seed": seed, "test_acc": float(m["test/acc"]),
           "test_ci95": float(m["test/acc_ci95"]), "test_items": len(records),
           "best_val_acc": float(cli.trainer.checkpoint_callback.best_model_score),
           "selected_epoch": selected_epoch(cli), "validation_curve": validation_curve(cli.trainer.logger.log_dir),
           "train_seconds": round(train_seconds, 1), "per_item": [r["acc"] for r in records],
           "overrides": overrides}
    names = json.loads(sources)
    # testing the best checkpoint restored the weight history saved with it (up to the selected epoch); the whole
    # meta phase's weights are in the run's log (weights/<source>, every log_every_n_steps = 10 iterations)
    selected = cli.model.weight_history
    if selected:
        w = torch.tensor(logged_weights(cli.trainer.logger.log_dir, names))
        out["final_weights"] = dict(zip(names, w[-1].tolist()))  # at the last logged meta-iteration (the 100th)
        out["selected_weights"] = dict(zip(names, selected[-1]))  # the tested model's policy
        out["mean_weights"] = dict(zip(names, w.mean(0).tolist()))
        out["weights_every_10"] = [[round(x, 4) for x in row] for row in w.tolist()]  # iterations 10, 20, ...
        out["centred_rewards"] = centred_rewards(cli.model.raw_reward_history, names)
    out["_cli"] = cli
    return out


def logged_weights(log_dir: str, names: list[str]) -> list[list[float]]:
    """The source weights a run logged (``weights/<source>`` in its CSV log), one row per logged meta-iteration."""
    with open(Path(log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get(f"weights/{names[0]}")]
    if not rows:
        raise ValueError(f"{log_dir}/metrics.csv: no weights/{names[0]} column values (was the meta phase logged?)")
    return [[float(r[f"weights/{n}"]) for n in names] for r in rows]


def centred_rewards(raw: list[dict[int, float]], names: list[str]) -> dict[str, list[float]]:
    """Per source, its raw reward minus the mean raw reward of the sources drawn with it, at every iteration that
    drew it beside another source: what a policy can learn from (a source better or worse than the others)."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for it in raw:
        if len(it) > 1:
            mean = sum(it.values()) / len(it)
            for i, r in it.items():
                out[names[i]].append(r - mean)
    return out


def reward_signal(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Does the reward carry signal? Per source, the mean centred reward over every iteration of ``runs`` and its
    t statistic (mean / standard error): |t| well above 2 says the source is reliably better or worse than the
    sources drawn with it; |t| below 2 for every source says the policy sees noise."""
    out = {}
    for name in runs[0]["centred_rewards"]:
        x = torch.tensor([v for r in runs for v in r["centred_rewards"][name]], dtype=torch.float64)
        if len(x) > 1:
            out[name] = {"mean": float(x.mean()), "t": float(x.mean() / (x.std() / len(x) ** 0.5)), "n": len(x)}
    return out


def per_seed_items(rows: list[dict[str, Any]], method: str, size: int, targets: list[str],
                   cosine: dict[str, list[float]]) -> dict[int, list[float]]:
    """Seed -> the method's per-item test correctness over every target (targets in order), for the seeds where
    every target has a run; the untrained cosine scorer (``cosine``) is the same in every seed."""
    out = {}
    for seed in sorted({r["seed"] for r in rows}):
        parts = []
        for target in targets:
            if method == "cosine":
                parts.append(cosine[target])
                continue
            run = [r for r in rows if (r["target"], r["size"], r["method"], r["seed"]) == (target, size, method, seed)]
            if not run:
                break
            parts.append(run[0]["per_item"])
        else:
            out[seed] = [x for p in parts for x in p]
    return out


def summarize(rows: list[dict[str, Any]], sizes: list[int], targets: list[str], cosine: dict[str, list[float]],
              mislabelled: list[str], seeds_reason: str | None) -> tuple[dict, list]:
    """Per (target, size, method) the accuracy over seeds; Meta-RTL minus every arm with the interval over seeds
    (``seed_claim``); with harmful sources, the weights they end with; the reward diagnostic."""
    table: dict[str, Any] = {}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for target in targets:
        table[f"{target}/cosine"] = {"mean": sum(cosine[target]) / len(cosine[target])}
        for size in sizes:
            for method in methods:
                runs = sorted((r for r in rows if (r["target"], r["size"], r["method"]) == (target, size, method)),
                              key=lambda r: r["seed"])
                if runs:
                    acc = torch.tensor([r["test_acc"] for r in runs], dtype=torch.float64)
                    table[f"{target}/{size}/{method}"] = {
                        "mean": float(acc.mean()), "ci95_over_seeds": t_ci95(acc),
                        "seed_means": acc.tolist(), "selected_epochs": [r["selected_epoch"] for r in runs]}
    suffix = "-harmful-sources-wordnet-qa" if mislabelled else "-wordnet-qa"
    setting = (f"with sources {', '.join(mislabelled)} mislabelled (answers moved to a wrong choice)" if mislabelled
               else "")
    claims, diffs = [], {}
    for size in sizes:
        rtl = per_seed_items(rows, "meta_rtl", size, targets, cosine)
        for base in ("uniform", "target_only", "frozen_policy", "cosine", "exp3", "multitask", "meta_rtl_normalised"):
            other = per_seed_items(rows, base, size, targets, cosine)
            shared = [s for s in rtl if s in other]
            if len(shared) < 2:
                continue
            reason = seeds_reason or (None if len(shared) >= 5 else
                                      f"{len(shared)} of the seeds finished every target within --max-minutes")
            label = LABELS[base]
            c = seed_claim(f"meta-rtl-vs-{label}{suffix}" + ("" if size == min(sizes) else f"@{size}"),
                           f"Meta-RTL beats {RTL_NAMES[base]} on WordNet-QA targets ({', '.join(targets)}) "
                           f"{setting + ' ' if setting else ''}with {size} target items (test accuracy; per seed the "
                           "mean paired difference over the targets' test items, interval over seeds)",
                           [rtl[s] for s in shared], [other[s] for s in shared], seeds_reason=reason)
            diffs[f"{size}/meta_rtl - {base}"] = {k: c[k] for k in ("diff", "ci95", "seeds", "items_ci95")}
            if base in CLAIMED or (size == min(sizes) and base != "meta_rtl_normalised"):
                claims.append(c)
    out: dict[str, Any] = {"per_target": table, "meta_rtl_minus": diffs, "weights": final_weights(rows, targets),
                           "reward_signal": {f"{t}/{m}": reward_signal(rs) for t in targets for m in methods
                                             if (rs := [r for r in rows if (r["target"], r["method"]) == (t, m)
                                                        and "centred_rewards" in r])},
                           "selected_epochs": {m: sorted(r["selected_epoch"] for r in rows if r["method"] == m)
                                               for m in methods}}
    if mislabelled:
        k = len(TASKS) - 1  # leave-one-task-out: every other task is a source
        harm = {}
        for method in ("meta_rtl", "meta_rtl_normalised", "exp3"):
            by_seed = {}
            for seed in sorted({r["seed"] for r in rows}):
                runs = [r for r in rows if r["method"] == method and r["seed"] == seed and r["size"] == min(sizes)]
                if len(runs) == len(targets):
                    by_seed[seed] = sum(r["final_weights"][s] for r in runs for s in mislabelled) / (
                        len(runs) * len(mislabelled))
            harm[method] = by_seed
        out["harmful_weight_by_seed"] = harm
        seeds = sorted(harm["meta_rtl"])
        if len(seeds) >= 2:
            claims.append(seed_claim(
                "meta-rtl-downweights-harmful-source-wordnet-qa",
                f"Meta-RTL's policy ends with the mislabelled sources ({', '.join(mislabelled)}) weighted below "
                f"1/K = 1/{k} (their mean final weight over targets ({', '.join(targets)}), one value per seed, "
                "interval over seeds)", [[1.0 / k] for _ in seeds], [[harm["meta_rtl"][s]] for s in seeds],
                seeds_reason=seeds_reason or (None if len(seeds) >= 5 else f"{len(seeds)} seeds finished")))
    return out, claims


def t_ci95(x: torch.Tensor) -> float:
    """Half-width of the t-interval of the mean of ``x`` (its spread over seeds)."""
    from zoo.training.metrics import seed_paired_difference_ci95

    return seed_paired_difference_ci95([[v] for v in x.tolist()], [[0.0] for _ in x.tolist()])[1]


def final_weights(rows: list[dict[str, Any]], targets: list[str]) -> dict[str, dict[str, float]]:
    """``target/method`` -> the mean over seeds of each source's final weight (for the README's weight table)."""
    out = {}
    for target in targets:
        for method in ("meta_rtl", "meta_rtl_normalised", "exp3"):
            runs = [r for r in rows if (r["target"], r["method"]) == (target, method) and "final_weights" in r]
            if runs:
                out[f"{target}/{method}"] = {s: sum(r["final_weights"][s] for r in runs) / len(runs)
                                             for s in runs[0]["final_weights"]}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one target, two seeds, few iterations")
    parser.add_argument("--targets", nargs="+", default=["antonym", "hypernym"], choices=list(TASKS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--all-methods-sizes", type=int, nargs="+", default=[32],
                        help="sizes at which every arm runs (elsewhere: meta_rtl, uniform, target_only)")
    parser.add_argument("--mislabelled", nargs="*", default=[], choices=list(TASKS),
                        help="harmful sources: their answers move to a wrong choice (-> meta_rtl_harmful_sources)")
    parser.add_argument("--reward-normalization", default="none", choices=["none", "iteration"])
    parser.add_argument("--reward-batches", type=int, default=1)
    parser.add_argument("--meta-iterations", type=int, default=100)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads: the steps are tiny, and on shared cores one thread is ~10x faster")
    parser.add_argument("--export", action="store_true",
                        help=f"register the best Meta-RTL run of the first target and smallest size as {REGISTRY_NAME}")
    parser.add_argument("--name", default=None, help="results file name (default: by setting)")
    parser.add_argument("--max-minutes", type=float, default=25.0,
                        help="start no run after this many minutes (the heavy-job budget); skipped runs are counted")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])  # as run: it names its own budget
    if args.quick:
        args.targets, args.sizes, args.seeds = args.targets[:1], [32], [0, 1]
        args.meta_iterations, args.iterations_per_epoch, args.epochs = 20, 10, 3
    for m in args.mislabelled:
        if m in args.targets:
            raise SystemExit(f"--mislabelled {m}: a target cannot be a mislabelled source (targets {args.targets})")
    seeds_reason = None if len(args.seeds) >= 5 else f"--seeds {args.seeds}: a check run, not the benchmark"
    tasks, build_dir = load_or_build()
    enc, encoding = encoder_with_cache(tasks)
    print(f"encoder cache: {encoding}", flush=True)
    checks = benchmark_checks(enc, tasks)
    for name, c in checks.items():
        print(f"{name:14s} choice-only {100 * c['choice_only'][0]:.1f} +- {100 * c['choice_only'][1]:.1f} %, "
              f"cosine {100 * c['cosine'][0]:.1f} %", flush=True)
    cosine = {t: checks[t]["cosine_per_item"] for t in args.targets}
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
                        if method not in ("meta_rtl", "uniform", "target_only") and size not in args.all_methods_sizes:
                            continue
                        if (time.perf_counter() - start) / 60 > args.max_minutes:
                            skipped += 1
                            continue
                        r = run(method, target, size, seed, args, tmp)
                        keep = (args.export and not args.quick and not args.mislabelled and method == "meta_rtl"
                                and target == args.targets[0] and size == min(args.sizes)
                                and (export is None or r["best_val_acc"] > export["best_val_acc"]))
                        if keep:
                            export = r
                        else:
                            r.pop("_cli")
                        rows.append(r)
                        print(f"{target:10s} n={size:4d} seed {seed} {method:14s} {100 * r['test_acc']:.2f} % "
                              f"(dev {100 * r['best_val_acc']:.1f}, epoch {r['selected_epoch']}, "
                              f"{r['train_seconds']:.0f} s)", flush=True)
        summary, claims = summarize(rows, sorted(args.sizes), args.targets, cosine, args.mislabelled, seeds_reason)
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
            if "centred_rewards" in r:  # the summary's reward_signal holds the diagnostic; keep each run's means
                r["centred_rewards"] = {k: {"mean": sum(v) / len(v) if v else None, "n": len(v)}
                                        for k, v in r["centred_rewards"].items()}
    name = args.name or ("meta_rtl_harmful_sources" if args.mislabelled else "meta_rtl_wordnet_qa")
    if args.quick:
        name += "_quick"
    setting = {"targets": args.targets, "sizes": sorted(args.sizes), "seeds": args.seeds, "methods": args.methods,
               "all_methods_sizes": args.all_methods_sizes, "mislabelled_sources": args.mislabelled,
               "reward_normalization": args.reward_normalization, "reward_batches": args.reward_batches,
               "meta_iterations": args.meta_iterations, "iterations_per_epoch": args.iterations_per_epoch,
               "epochs": args.epochs, "config": CONFIG, "threads": args.threads, "dev_items": 100, "test_items": 300,
               "encoder": "all-MiniLM-L6-v2, frozen, mean pooling, max_length 48 (cached)",
               "checkpoint_candidates": "every epoch, every arm (val/acc on the target dev items, first best kept)",
               "build": str(build_dir.name), "total_minutes": round((time.perf_counter() - start) / 60, 1),
               "max_minutes": args.max_minutes, "runs_skipped_for_time": skipped}
    for c in checks.values():
        c.pop("cosine_per_item")
    path = write_results(name, {"command": command, "setting": setting, "encoding": encoding, "checks": checks,
                                "summary": summary, "claims": claims, "runs": rows,
                                "registry_entry": entry.name if entry else None,
                                "load_average_at_end": [round(x, 2) for x in os.getloadavg()]})
    print(f"wrote {path}")
    for key, e in summary["meta_rtl_minus"].items():
        print(f"{key}: {100 * e['diff']:+.2f} +- {100 * e['ci95']:.2f} points ({e['seeds']} seeds)")
    for key, w in summary["weights"].items():
        print(key, {s: round(v, 3) for s, v in w.items()})
    for c in claims:
        print(f"{c['id']}: {'holds' if c['holds'] else 'does not hold'}")


if __name__ == "__main__":
    main()
