"""GPAM vs ProtoNet with NOTA on few-shot relation episodes, 5-way 1-shot and 5-shot, same encoder and episodes.

Two data sets, one protocol (README "Evaluation protocol"):

* ``--dataset wordnet-rel`` (default; ``benchmarks/results/gpam_wordnet_rel.json``): the embedded WordNet-Rel
  benchmark, a template benchmark (one relation-independent sentence pattern over WordNet glosses);
* ``--dataset fewrel-nyt-semeval`` (``benchmarks/gpam_fewrel_nyt_semeval.py`` -> ``gpam_fewrel_nyt_semeval.json``):
  real sentences, FewRel 2.0's NYT and SemEval-2010 validation files shipped with the package, split into
  relation-disjoint train / validation / test relations (the fixed lists of
  :data:`datamodules.relations.fewrel.NYT_SEMEVAL_SPLITS`).

For each shot setting and seed this script trains, through the real CLI configs and on the same frozen MiniLM
entity features,

* ``gpam``: four semi-factual views, Gaussian prototypes, adaptive margins;
* ``protonet-threshold-views`` (the reported baseline: it sees every input GPAM sees): ProtoNet on the same four
  views, prototypes = mean of the K x V support view features and queries = mean of their views (as GPAM fuses
  them), NOTA by a distance threshold tuned on the validation episodes after every validation;
* ``protonet-threshold``: the same on the main view only (plain ProtoNet with a tuned threshold);
* ``protonet-logit`` (WordNet-Rel only): ProtoNet with the FewRel toolkit's NOTA logit (min class logit - 1). It can
  never predict NOTA (NOTA F1 0), so it is a row of the table and no claim is made against it;
* on WordNet-Rel the ablations ``gpam-point`` (unit variance in the distance; the boundary still adapts to the
  spread of each class's support views, so only the variance is removed) and ``gpam-fixed-margin`` (one radius for
  every class); ``gpam-no-views`` (main view only) runs when named in ``--methods`` (the views' effect is measured
  by the two ProtoNet baselines instead), and every ablation runs on FewRel when named;

with the same budget (epochs x training episodes), the same candidate checkpoints (every epoch, validated on the
same fixed validation episodes) and the same rule (best validation accuracy over N + 1; the threshold baselines
re-tune their threshold at each validation), and tests each selected checkpoint on the same fixed test episodes
at NOTA rates 0.15, 0.3 and 0.5 (``data.eval_seed`` fixed; ``seed`` varies the initialisation and the training
episodes). Each run records its selected epoch and validation curve. Claims between trained methods use
``common.seed_claim``: the per-seed mean paired difference over the shared test episodes, t-interval over seeds.

    python benchmarks/gpam_wordnet_rel.py --quick      # end-to-end check -> gpam_wordnet_rel_quick.json
    python benchmarks/gpam_wordnet_rel.py --export --max-minutes 21   # README table; registers gpam-minilm-wordnet-rel-5w{1,5}s

Budgets (per data set, ``DATASETS``) are sized so that one invocation fits the shared CPU's 25-minute slot;
``--resume`` adds the runs a ``--max-minutes`` budget cut off, in a second invocation, to the same results file.

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

from common import (CSV_LOGGER, export_and_register, fit_then_test_best, seed_claim, selected_epoch,
                    validation_curve, write_results)

from zoo.cli.lightning_cli import build_cli
from zoo.training.metrics import mean_ci95

VIEWS_ARG = "--model.views=[main,head,tail,context]"
DATASETS: dict[str, dict[str, Any]] = {
    "wordnet-rel": {
        "gpam": "configs/gpam/wordnet-rel.yaml", "proto": "configs/protonet_nota/wordnet-rel.yaml",
        "logit": "configs/protonet_nota/wordnet-rel-logit.yaml", "results": "gpam_wordnet_rel", "suffix": "",
        "label": "WordNet-Rel", "register": {1: "gpam-minilm-wordnet-rel-5w1s", 5: "gpam-minilm-wordnet-rel-5w5s"},
        "quick_data": ["--data.min_per_relation=20", "--data.max_per_relation=20"],
        "methods": ["gpam", "protonet-threshold-views", "protonet-threshold", "gpam-point", "gpam-fixed-margin"],
        "budget": {"epochs": 4, "train": 100, "val": 40, "test": 100},
        "command": "python benchmarks/gpam_wordnet_rel.py"},
    "fewrel-nyt-semeval": {
        "gpam": "configs/gpam/fewrel-nyt-semeval.yaml", "proto": "configs/protonet_nota/fewrel-nyt-semeval.yaml",
        "logit": None, "results": "gpam_fewrel_nyt_semeval", "suffix": "-fewrel-nyt-semeval",
        "label": "FewRel 2.0 NYT + SemEval", "register": {1: "gpam-minilm-fewrel-nyt-semeval-5w1s"},
        "quick_data": ["--data.max_per_relation=20"],
        "methods": ["gpam", "protonet-threshold-views", "protonet-threshold"],
        "budget": {"epochs": 6, "train": 100, "val": 50, "test": 200},
        "command": "python benchmarks/gpam_fewrel_nyt_semeval.py"},
}
ABLATIONS = {"gpam-no-views": "no-views", "gpam-point": "point-prototypes", "gpam-fixed-margin": "fixed-margin"}
RATES = (0.15, 0.3, 0.5)
BASELINE = "protonet-threshold-views"


def methods_of(dataset: str) -> dict[str, tuple[str, list[str]]]:
    """Method name -> (config, CLI overrides) on ``dataset``."""
    d = DATASETS[dataset]
    out = {"gpam": (d["gpam"], []), BASELINE: (d["proto"], [VIEWS_ARG]), "protonet-threshold": (d["proto"], [])}
    if d["logit"]:
        out["protonet-logit"] = (d["logit"], [])
    out.update({"gpam-no-views": (d["gpam"], ["--model.views=[main]"]),
                "gpam-point": (d["gpam"], ["--model.prototype=point"]),
                "gpam-fixed-margin": (d["gpam"], ["--model.adaptive_margin=false"])})
    return out


def run(dataset: str, method: str, shot: int, seed: int, episodes: dict[str, int], epochs: int, save_dir: str,
        data_args: list[str]) -> dict[str, Any]:
    config, extra = methods_of(dataset)[method]
    log_dir = Path(save_dir) / f"{method}-{shot}-{seed}"
    overrides = [*data_args, f"--data.k_shot={shot}", f"--data.seed={seed}", "--data.eval_seed=0", f"--seed_everything={seed}",
                 f"--trainer.max_epochs={epochs}", f"--data.train_episodes={episodes['train']}",
                 f"--data.val_episodes={episodes['val']}", f"--data.test_episodes={episodes['test']}", *extra]
    cli, train_seconds = fit_then_test_best(ROOT / config, overrides, log_dir)
    m = cli.trainer.callback_metrics
    out: dict[str, Any] = {"method": method, "shot": shot, "seed": seed, "train_seconds": round(train_seconds, 1),
                           "best_val_acc": float(cli.trainer.checkpoint_callback.best_model_score),
                           "selected_epoch": selected_epoch(cli), "epochs": epochs,
                           "validation_curve": validation_curve(cli.trainer.logger.log_dir), "rates": {}}
    for rate in RATES:
        key = f"test/nota{rate:g}"
        rows = cli.model.records[key]
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


def by_seed(runs: dict[str, list[dict[str, Any]]], a: str, b: str, rate: str) -> tuple[list, list]:
    """Per-episode accuracies of methods ``a`` and ``b`` for each seed both ran (same fixed test episodes)."""
    seeds = sorted({r["seed"] for r in runs[a]} & {r["seed"] for r in runs[b]})
    pick = {m: {r["seed"]: r["rates"][rate]["per_episode"] for r in runs[m]} for m in (a, b)}
    return [pick[a][s] for s in seeds], [pick[b][s] for s in seeds]


def summarize(rows: list[dict[str, Any]], dataset: str,
              seeds_reason: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    table: dict[str, Any] = {}
    claims: list[dict[str, Any]] = []
    suffix, label = DATASETS[dataset]["suffix"], DATASETS[dataset]["label"]
    methods = methods_of(dataset)
    for shot in sorted({r["shot"] for r in rows}):
        runs = {m: [r for r in rows if r["shot"] == shot and r["method"] == m] for m in methods}
        for method, rs in runs.items():
            if not rs:
                continue
            for rate in (f"{x:g}" for x in RATES):
                mean, ci = mean_ci95(seed_averaged(rs, rate))
                f1 = [r["rates"][rate]["nota_f1"] for r in rs]
                table[f"5w{shot}s/{method}/nota{rate}"] = {
                    "acc": mean, "ci95_over_episodes": ci, "seed_means": [r["rates"][rate]["acc"] for r in rs],
                    "nota_f1": sum(f1) / len(f1), "nota_f1_seeds": f1, "seeds": [r["seed"] for r in rs],
                    "selected_epochs": [r.get("selected_epoch") for r in rs],
                    "train_seconds_mean": sum(r["train_seconds"] for r in rs) / len(rs)}

        def add(cid: str, statement: str, a: str, b: str, rate: str) -> None:
            xa, xb = by_seed(runs, a, b, rate)
            if len(xa) >= 2:
                claims.append(seed_claim(cid, statement, xa, xb,
                                         seeds_reason=seeds_reason if len(xa) < 5 else None))

        setting = f"{label}, 5-way {shot}-shot"
        for rate in (f"{x:g}" for x in RATES):
            add(f"gpam-vs-protonet-threshold-views{suffix}-5w{shot}s-nota{rate}",
                f"GPAM is more accurate over N+1 classes than ProtoNet on the same four views with a validation-tuned "
                f"NOTA threshold, {setting}, NOTA rate {rate}", "gpam", BASELINE, rate)
        add(f"gpam-vs-protonet-threshold{suffix}-5w{shot}s-nota0.3",
            f"GPAM is more accurate than ProtoNet on the main view with a validation-tuned NOTA threshold, {setting}, "
            "NOTA rate 0.3", "gpam", "protonet-threshold", "0.3")
        add(f"protonet-threshold-views-vs-main{suffix}-5w{shot}s-nota0.3",
            f"the four views alone (ProtoNet with a tuned threshold on the views vs on the main view) raise accuracy, "
            f"{setting}, NOTA rate 0.3", BASELINE, "protonet-threshold", "0.3")
        for method, name in ABLATIONS.items():
            add(f"gpam-vs-{name}{suffix}-5w{shot}s-nota0.3",
                f"full GPAM is more accurate than its {name} ablation, {setting}, NOTA rate 0.3", "gpam", method, "0.3")
    return table, claims


def export(dataset: str, result: dict[str, Any], shot: int, episodes: dict[str, int], epochs: int,
           command: str, data_args: list[str]) -> dict[str, Any]:
    """Register a GPAM run's trainable weights (the frozen MiniLM is not stored; its sha256 is checked on load)."""
    d = DATASETS[dataset]
    name = d["register"][shot]
    r03 = result["rates"]["0.3"]
    entry = export_and_register(
        name, {"cli": result["_cli"], "test_acc": r03["acc"], "test_ci95": r03["ci95"],
               "test_episodes": len(r03["per_episode"]), "best_val_acc": result["best_val_acc"],
               "train_seconds": result["train_seconds"]},
        system="gpam", config=str(ROOT / d["gpam"]),
        setting=f"{d['label']} 5-way {shot}-shot, 15 queries, NOTA rate 0.3 (D-Proto protocol), frozen MiniLM",
        command=f"{command}  (seed {result['seed']}, best validation accuracy of the seeds)",
        notes=f"accuracy over N+1 at NOTA 0.3; NOTA F1 {r03['nota_f1']:.4f}; train with: zoo fit --config "
              f"{d['gpam']} --data.k_shot={shot} --trainer.max_epochs={epochs} "
              f"--data.train_episodes={episodes['train']} --data.val_episodes={episodes['val']}",
        overrides=[*data_args, f"--data.k_shot={shot}", "--data.eval_seed=0", f"--data.test_episodes={episodes['test']}"])
    print(f"registered {name}: {entry.metrics}", flush=True)
    return {name: entry.__dict__}


def transfer(rows_name: str, dataset: str, episodes: dict[str, int], data_args: list[str]) -> dict[str, Any] | None:
    """The shipped ``rows_name`` checkpoint (trained elsewhere) tested as is on ``dataset``'s fixed 1-shot test
    episodes: what a user who starts from it gets. None when the checkpoint is not registered here."""
    import lightning.pytorch as pl

    import zoo
    from zoo.hub.pretrained import registry_entry

    try:
        entry = registry_entry(rows_name)
    except KeyError:
        return None
    cli = build_cli(["fit", "--config", str(ROOT / DATASETS[dataset]["gpam"]), "--config", CSV_LOGGER, *data_args,
                     "--data.k_shot=1", "--data.eval_seed=0", f"--data.test_episodes={episodes['test']}"], run=False)
    model = zoo.load_pretrained(rows_name)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(model, datamodule=cli.datamodule, verbose=False)
    m = trainer.callback_metrics
    out = {"checkpoint": rows_name, "sha256": entry.sha256, "rates": {}}
    for rate in RATES:
        key = f"test/nota{rate:g}"
        out["rates"][f"{rate:g}"] = {k: float(m[f"{key}/{k}"]) for k in ("acc", "acc_ci95", "nota_f1",
                                                                         "nota_precision", "nota_recall")}
    return out


def registered_sha(name: str) -> str | None:
    """The sha256 of registry entry ``name`` (None when it is not registered)."""
    from zoo.hub.pretrained import registry_entry

    try:
        return registry_entry(name).sha256
    except KeyError:
        return None


def warm_features(dataset: str, data_args: list[str]) -> float:
    """Encode every instance of every split in every view once (frozen encoder: cached for all later runs)."""
    cli = build_cli(["fit", "--config", str(ROOT / DATASETS[dataset]["gpam"]), "--config", CSV_LOGGER, *data_args],
                    run=False)
    cli.datamodule.setup()
    start = time.perf_counter()
    n = sum(cli.model.encode_items(src) for src in cli.datamodule.sources.values())
    seconds = time.perf_counter() - start
    print(f"encoded {n} instances x 4 views in {seconds:.0f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None, dataset: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(DATASETS), default=dataset or "wordnet-rel")
    parser.add_argument("--quick", action="store_true", help="1 seed, a few episodes: checks the pipeline")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: the data set's methods (the logit baseline, the no-views ablation and, on "
                             "FewRel, every ablation only when named)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the data set's budget")
    parser.add_argument("--train-episodes", type=int, default=None)
    parser.add_argument("--val-episodes", type=int, default=None)
    parser.add_argument("--test-episodes", type=int, default=None)
    parser.add_argument("--resume", action="store_true",
                        help="add to the results file's runs (same budget), skipping the (method, shot, seed) runs it "
                             "has: how a benchmark longer than one --max-minutes budget is finished")
    parser.add_argument("--max-per-relation", type=int, default=None,
                        help="cap on instances per relation (FewRel NYT/SemEval: bounds the encoder pass)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop starting new runs after this many minutes (the results say so)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while training (episodes are tiny: more threads only add overhead)")
    parser.add_argument("--export", action="store_true", help="register the best-on-validation GPAM seed per setting")
    args = parser.parse_args(argv)
    d = DATASETS[args.dataset]
    methods = methods_of(args.dataset)
    args.methods = args.methods or list(d["methods"])
    budget = d["budget"]
    args.epochs = budget["epochs"] if args.epochs is None else args.epochs
    args.train_episodes = budget["train"] if args.train_episodes is None else args.train_episodes
    args.val_episodes = budget["val"] if args.val_episodes is None else args.val_episodes
    args.test_episodes = budget["test"] if args.test_episodes is None else args.test_episodes
    unknown = set(args.methods) - set(methods)
    if unknown:
        parser.error(f"--methods: {sorted(unknown)} are not methods of {args.dataset}; choose among {list(methods)}")
    command = " ".join([d["command"], *(argv if argv is not None else sys.argv[1:])])
    data_args = [f"--data.max_per_relation={args.max_per_relation}"] if args.max_per_relation else []
    if args.quick:  # fewer instances per relation: the encoder pass is a fraction of the real one
        args.seeds, args.epochs = args.seeds[:2], 1
        args.train_episodes, args.val_episodes, args.test_episodes = 10, 6, 20
        data_args = d["quick_data"]
    episodes = {"train": args.train_episodes, "val": args.val_episodes, "test": args.test_episodes}
    name = d["results"] + ("_quick" if args.quick else "")
    rows: list[dict[str, Any]] = []
    exports: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    commands = [command]
    if args.resume:
        import json

        from common import RESULTS

        path = RESULTS / f"{name}.json"
        if not path.is_file():
            parser.error(f"--resume: {path} does not exist")
        old = json.loads(path.read_text())
        was = (old["setting"]["episodes"], old["setting"]["epochs"], old["setting"].get("data_args", []))
        if was != (episodes, args.epochs, data_args):
            parser.error(f"--resume: {path} was measured with episodes/epochs/data {was}, this run asks for "
                         f"{(episodes, args.epochs, data_args)}; the same budget is needed")
        rows, exports = old["runs"], old.get("registry_entries", {})
        commands = [*old.get("commands", [old["command"]]), command]
        extra = {k: old[k] for k in ("transfer",) if k in old}
        if old.get("stopped"):
            extra["stopped_earlier"] = old["stopped"]
    done = {(r["method"], r["shot"], r["seed"]) for r in rows}
    begun = time.perf_counter()
    planned = {(m, shot, seed) for shot in args.shots for seed in args.seeds for m in args.methods}
    # a resume with nothing left to train (e.g. only the transfer row to refresh) skips the full encoder pass
    encode_seconds = warm_features(args.dataset, data_args) if planned - done else 0.0
    if args.resume and not planned - done:
        encode_seconds = old["setting"]["encode_seconds"]
    torch.set_num_threads(args.threads)
    setting = {"dataset": d["label"], "episodes": episodes, "epochs": args.epochs, "seeds": args.seeds,
               "eval_seed": 0, "n_way": 5, "queries_per_episode": 15, "train_na_rate": 0.5, "val_na_rate": 0.3,
               "test_na_rates": list(RATES), "protocol": "dproto", "data_args": data_args,
               "encoder": "all-MiniLM-L6-v2, frozen, entity-span pooling, max_length 128",
               "encode_seconds": round(encode_seconds, 1), "torch_threads_training": args.threads,
               "model_selection": "every method: a checkpoint per epoch, best validation accuracy over N+1 on the "
                                  "same fixed validation episodes (threshold baselines re-tune their threshold "
                                  "at each validation)",
               "configs": {m: [c, *o] for m, (c, o) in methods.items()}}
    stopped: list[str] = []

    def seeds_reason() -> str | None:
        return (f"the --max-minutes {args.max_minutes:g} budget stopped the runs before every seed finished "
                f"({len(stopped)} (methods, shot, seed) groups not run: the results file's `stopped`)"
                if stopped else None)

    def save(complete: bool) -> Path:
        """Results so far (written after every run, so a run cut short by its time budget still leaves them)."""
        summary, claims = summarize(rows, args.dataset, seeds_reason() or "quick pipeline check")
        load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
        return write_results(name, {"command": commands[0], "commands": commands, "complete": complete,
                                    "setting": setting,
                                    "summary": summary, "claims": claims, "runs": rows, "stopped": stopped,
                                    "registry_entries": exports, **extra, "load_average_at_end": load})

    # the claims' comparison first (both settings), then the rest
    first = [m for m in args.methods if m in ("gpam", BASELINE, "protonet-threshold")]
    order = [(first, shot) for shot in args.shots] + [([m for m in args.methods if m not in first], shot)
                                                     for shot in args.shots]
    with tempfile.TemporaryDirectory() as tmp:
        for methods_now, shot in order:
            for seed in args.seeds:
                if args.max_minutes and (time.perf_counter() - begun) / 60 > args.max_minutes:
                    stopped.append(f"{', '.join(methods_now)} 5-way {shot}-shot seed {seed} not run")
                    continue
                for method in methods_now:
                    if (method, shot, seed) in done:
                        continue
                    r = run(args.dataset, method, shot, seed, episodes, args.epochs, tmp, data_args)
                    rows.append(r)
                    print(f"5-way {shot}-shot {method:24s} seed {seed}: " + ", ".join(
                        f"NOTA {k}: {100 * v['acc']:.2f} +- {100 * v['ci95']:.2f} % (F1 {v['nota_f1']:.3f})"
                        for k, v in r["rates"].items()) + f"; epoch {r['selected_epoch']}; "
                        f"train {r['train_seconds']:.0f} s", flush=True)
            if (args.export and not args.quick and "gpam" in methods_now and shot in d["register"]
                    and any(r["method"] == "gpam" and r["shot"] == shot and "_cli" in r for r in rows)):
                # among this invocation's GPAM runs (an earlier invocation's models are not in memory)
                best = max((r for r in rows if r["shot"] == shot and r["method"] == "gpam" and "_cli" in r),
                           key=lambda r: r["best_val_acc"])
                exports.update(export(args.dataset, best, shot, episodes, args.epochs, command, data_args))
            for r in rows:
                r.pop("_cli", None)  # each holds a model
            save(complete=False)
    # the transfer row describes the WordNet-Rel checkpoint registered now: measured again when it was re-registered
    if args.dataset == "fewrel-nyt-semeval" and extra.get("transfer", {}).get("sha256") != registered_sha(
            "gpam-minilm-wordnet-rel-5w1s"):
        got = transfer("gpam-minilm-wordnet-rel-5w1s", args.dataset, episodes, data_args)
        if got:
            extra["transfer"] = got
            print(f"transfer of {got['checkpoint']}: {got['rates']}", flush=True)
    path = save(complete=not stopped)
    print(f"wrote {path}")
    for c in summarize(rows, args.dataset, seeds_reason() or "quick pipeline check")[1]:
        print(f"{c['id']}: {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points, holds={c['holds']}")


if __name__ == "__main__":
    main()
