"""RAML vs ProtoNet-text on the embedded WordNet benchmark, 5-way 1-shot and 5-shot, same encoder, same episodes.

For each shot setting and each seed this script trains, through the real CLI configs, on the same frozen MiniLM
(each with a trainable linear map that starts as the identity):

* ``protonet-text``: ProtoNet, cosine distance with a learned logit scale (``configs/protonet_text/wordnet.yaml``):
  the baseline without retrieval;
* ``protonet-text-euclidean``: the same with squared Euclidean distance and T = 1 (the baseline as it was);
* ``raml``: RAML with its default metric head (``configs/raml/wordnet.yaml``, ``zoo/methods/raml.py``): cosine between the
  prototype and the query enriched by its P = 3 retrieved passages, plus the multi-view fusion score;
* ``raml-no-passages`` (ablation): the same model with no passages (``--model.n_passages=0``);
* ``raml-random-passages`` (ablation): the same model reading P passages drawn at random from the corpus
  (``--model.passage_source=random``): do *relevant* passages matter, or only extra vectors?

and tests each best-on-validation checkpoint on the *same* fixed test episodes (``data.eval_seed`` is fixed;
``seed`` varies the initialisation and the training episodes). ``protonet-text (untrained)`` is the frozen encoder
with no training at all (cosine). Reported per method: the mean over seeds with the 95% CI over test episodes of the
seed-averaged accuracy (every seed sees the same episodes, so pooling runs as if independent would understate the
interval); the majority-class share (``zoo.training.metrics.majority_class_share``: a collapsed head sends most of an
episode's queries to one class) with the collapse check; the validation curve of every run; the learned passage
weight and logit scale of RAML. The ``claims`` are paired differences over the test episodes of seed-averaged
accuracies (``benchmarks.common.claim``).

    python benchmarks/raml_wordnet.py --quick      # end-to-end check, a few episodes -> raml_wordnet_quick.json
    python benchmarks/raml_wordnet.py              # the README table: 3 seeds x 2 settings x 5 methods, 5 epochs of
                                                   # 200 training episodes, 50 validation episodes per epoch and
                                                   # 600 fixed test episodes; registers the best-on-validation seed
                                                   # of raml and protonet-text per setting (trainable parts only)
"""

from __future__ import annotations

import argparse
import csv
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

from common import CSV_LOGGER, claim, export_and_register, selected_epoch, write_results

from zoo.cli.lightning_cli import build_cli
from zoo.training.metrics import head_collapsed, mean_ci95

RAML_CONFIG = "configs/raml/wordnet.yaml"
PROTO_CONFIG = "configs/protonet_text/wordnet.yaml"
EUCLIDEAN = ["--model.distance=euclidean", "--model.learn_temperature=false", "--model.temperature=1.0"]
METHODS = {
    "protonet-text": (PROTO_CONFIG, []),
    "protonet-text-euclidean": (PROTO_CONFIG, EUCLIDEAN),
    "raml": (RAML_CONFIG, []),
    "raml-no-passages": (RAML_CONFIG, ["--model.n_passages=0"]),
    "raml-random-passages": (RAML_CONFIG, ["--model.passage_source=random"]),
    # as published (fusion score alone over token states): not in the default run, hours on CPU
    "raml-published": (RAML_CONFIG, ["--model.head=published"]),
}
DEFAULT_METHODS = ["protonet-text", "protonet-text-euclidean", "raml", "raml-no-passages", "raml-random-passages"]
COMMAND = "python benchmarks/raml_wordnet.py"
EXPORTS = {"raml": ("raml", RAML_CONFIG), "protonet-text": ("protonet-text", PROTO_CONFIG)}  # -> registry prefix
#: (claim id stem, statement, method a, method b): each claims that a beats b, per shot setting
CLAIMS = [
    ("raml-vs-protonet-text", "RAML beats ProtoNet-text (cosine), WordNet 5-way {k}-shot", "raml", "protonet-text"),
    ("raml-retrieval-vs-none", "RAML with retrieved passages beats the same model without passages, WordNet 5-way "
     "{k}-shot", "raml", "raml-no-passages"),
    ("raml-retrieval-vs-random", "RAML with retrieved passages beats the same model with random passages, WordNet "
     "5-way {k}-shot", "raml", "raml-random-passages"),
    ("protonet-text-cosine-vs-euclidean", "ProtoNet-text with cosine distance (learned scale) beats squared "
     "Euclidean, WordNet 5-way {k}-shot", "protonet-text", "protonet-text-euclidean"),
]


class StepTimer(pl.Callback):
    """Wall time of every training step (forward, backward, optimiser), for retrieval's share of it."""

    def __init__(self) -> None:
        self.seconds, self.steps, self._t = 0.0, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._t
        self.steps += 1


def validation_curve(log_dir: str) -> list[dict]:
    """(epoch, val/acc, val/majority_share) of every validation of a run, from its CSV log: the learning curve."""
    path = Path(log_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return [{"epoch": int(r["epoch"]), "val_acc": round(float(r["val/acc"]), 4),
                 "val_majority_share": round(float(r["val/majority_share"]), 4)}
                for r in csv.DictReader(f) if r.get("val/acc")]


def data_overrides(max_per_class: int | None, max_passages: int | None = None) -> list[str]:
    """Options that cap the examples per class; the passage corpus stays the full benchmark's.

    Encoding is what a CPU run pays for (each text once, through MiniLM); the cap shrinks the texts to encode, not
    the classes. A capped WordNet build keeps the uncapped build's corpus (leak-free for every example), so every
    run reads the same passages and the same persisted index (``zoo.nn.retrieval.keyed_index_dir``). Before that,
    this function passed the full build's ``passages.jsonl`` as ``--data.corpus_path``: the same corpus.
    """
    head = [] if max_passages is None else [f"--data.max_passages={max_passages}"]
    return head if max_per_class is None else [f"--data.max_per_class={max_per_class}", *head]


def encode_all_texts(max_per_class: int | None, text: str = "definition") -> dict[str, Any]:
    """Embed every example once, in length-sorted batches, into the frozen MiniLM's process-wide cache, which
    every run's encoder shares (``TextEncoder(share_cache=True)``): runs then time training, not first encodings.
    ``text``: what an example is (``WordNetDataModule(text=...)``; ``"lemma"`` for the knowledge-gap benchmark)."""
    from datamodules.text import WordNetDataModule
    from zoo.nn.text_encoder import TextEncoder

    start = time.perf_counter()
    encoder = TextEncoder(pooling="mean", max_length=64, freeze=True)  # the configs' encoder settings
    texts = [t for source in WordNetDataModule(max_per_class=max_per_class, text=text).build_sources().values()
             for t in source.items]
    encoder.pooled(texts)
    return {"texts": len(texts), "seconds": round(time.perf_counter() - start, 1)}


def run(method: str, shot: int, seed: int, episodes: dict[str, int], epochs: int, save_dir: str,
        train: bool = True, data: list[str] | None = None,
        methods: dict[str, tuple[str, list[str]]] | None = None) -> dict[str, Any]:
    """Fit ``method`` (a key of ``methods``, by default :data:`METHODS`: its config and overrides) on one shot
    setting and seed through the real CLI, then test its best-on-validation checkpoint on the fixed test episodes."""
    config, extra = (METHODS if methods is None else methods)[method]
    overrides = [*(data or []), f"--data.k_shot={shot}", f"--data.seed={seed}", "--data.eval_seed=0",
                 f"--seed_everything={seed}", f"--trainer.max_epochs={epochs}",
                 f"--data.train_episodes={episodes['train']}", f"--data.val_episodes={episodes['val']}",
                 f"--data.test_episodes={episodes['test']}", *extra]
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
    records = cli.model.records["test"]
    out = {"method": method, "shot": shot, "seed": seed, "test_acc": float(m["test/acc"]),
           "test_ci95": float(m["test/acc_ci95"]), "test_episodes": len(records),
           "test_majority_share": float(m["test/majority_share"]),
           "train_seconds": round(train_seconds, 1), "test_seconds": round(test_seconds, 1),
           "train_steps": timer.steps, "overrides": overrides,
           "per_episode": [r["acc"] for r in records],
           "per_episode_majority_share": [r["majority_share"] for r in records]}
    if train:
        out["validation_curve"] = validation_curve(cli.trainer.logger.log_dir)
        out["selected_epoch"] = selected_epoch(cli)
        if cli.trainer.checkpoint_callback is not None and cli.trainer.checkpoint_callback.best_model_score:
            out["best_val_acc"] = float(cli.trainer.checkpoint_callback.best_model_score)
    learned = {name: float(getattr(cli.model, name).exp() if name == "log_scale" else getattr(cli.model, name))
               for name in ("log_scale", "passage_weight") if isinstance(getattr(cli.model, name, None), torch.Tensor)}
    if learned:  # the best checkpoint's values: does the model use its passages (beta), how sharp is it (scale)
        out["learned"] = {("scale" if k == "log_scale" else k): round(v, 4) for k, v in learned.items()}
    if method.startswith("raml") and timer.seconds > 0:
        out["retrieval_train_seconds"] = round(train_retrieval, 2)
        out["train_step_seconds"] = round(timer.seconds, 2)
        out["retrieval_share_of_train_step"] = train_retrieval / timer.seconds
    out["trainable_parameters"] = sum(p.numel() for p in cli.model.parameters() if p.requires_grad)
    out["_cli"] = cli
    return out


def seed_averaged(rows: list[dict[str, Any]], shot: int, method: str, key: str = "per_episode") -> torch.Tensor:
    """Per test episode, the mean over seeds of ``key`` (every run is tested on the same episodes)."""
    runs = sorted((r for r in rows if r["shot"] == shot and r["method"] == method), key=lambda r: r["seed"])
    return torch.tensor([r[key] for r in runs], dtype=torch.float64).mean(0)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for shot in sorted({r["shot"] for r in rows}):
        for method in dict.fromkeys(r["method"] for r in rows if r["shot"] == shot):
            runs = [r for r in rows if r["shot"] == shot and r["method"] == method]
            mean, ci = mean_ci95(seed_averaged(rows, shot, method))
            shares = torch.tensor([s for r in runs for s in r["per_episode_majority_share"]], dtype=torch.float64)
            entry = {"mean": mean, "ci95_over_episodes": ci, "seeds": [r["seed"] for r in runs],
                     "seed_means": [r["test_acc"] for r in runs],
                     "seed_std": float(torch.tensor([r["test_acc"] for r in runs]).std()) if len(runs) > 1 else 0.0,
                     "majority_share": float(shares.mean()), "collapsed": head_collapsed(shares, 5)}
            shares_step = [r["retrieval_share_of_train_step"] for r in runs if "retrieval_share_of_train_step" in r]
            if shares_step:
                entry["retrieval_share_of_train_step"] = sum(shares_step) / len(shares_step)
            learned = [r["learned"] for r in runs if "learned" in r]
            if learned:
                entry["learned"] = {k: [d[k] for d in learned] for k in learned[0]}
            table[f"5w{shot}s/{method}"] = entry
    return table


def claims_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every claim of :data:`CLAIMS` whose two methods ran, per shot setting, paired over the test episodes."""
    out = []
    for shot in sorted({r["shot"] for r in rows}):
        have = {r["method"] for r in rows if r["shot"] == shot}
        for stem, statement, a, b in CLAIMS:
            if a in have and b in have:
                out.append(claim(f"{stem}-5w{shot}s", statement.format(k=shot), seed_averaged(rows, shot, a).tolist(),
                                 seed_averaged(rows, shot, b).tolist(),
                                 seeds=len({r["seed"] for r in rows}), trained=True))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, a few episodes: checks the pipeline")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-episodes", type=int, default=200)
    parser.add_argument("--val-episodes", type=int, default=50)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--max-per-class", type=int, default=40,
                        help="cap on examples per class (0: all); see data_overrides")
    parser.add_argument("--max-passages", type=int, default=None,
                        help="retrieve from the first N passages only (quick: 2000; the index costs one MiniLM pass "
                             "per passage)")
    parser.add_argument("--no-export", action="store_true", help="do not register checkpoints")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    if args.quick:
        args.seeds, args.epochs = args.seeds[:2], 1
        args.train_episodes, args.val_episodes, args.test_episodes = 6, 6, 30
        args.max_per_class, args.max_passages = min(args.max_per_class or 10, 10), args.max_passages or 2000
    export_on = not (args.quick or args.no_export)
    episodes = {"train": args.train_episodes, "val": args.val_episodes, "test": args.test_episodes}
    data = data_overrides(args.max_per_class or None, args.max_passages)
    encoding = None if args.quick else encode_all_texts(args.max_per_class or None)  # quick: only what it draws
    if encoding:
        print(f"encoded {encoding['texts']} texts in {encoding['seconds'] / 60:.1f} min", flush=True)
    rows: list[dict[str, Any]] = []
    exports = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for shot in args.shots:
            zero = run("protonet-text", shot, args.seeds[0], episodes, args.epochs, tmp, train=False, data=data)
            zero["method"] = "protonet-text (untrained)"
            zero.pop("_cli")
            rows.append(zero)
            for seed in args.seeds:
                for method in args.methods:
                    r = run(method, shot, seed, episodes, args.epochs, tmp, data=data)
                    if not (export_on and method in EXPORTS):
                        r.pop("_cli")  # each holds a model; keep only what may be exported
                    rows.append(r)
                    share = r.get("retrieval_share_of_train_step")
                    print(f"5-way {shot}-shot {method:22s} seed {seed}: {100 * r['test_acc']:.2f} +- "
                          f"{100 * r['test_ci95']:.2f} % (majority share {r['test_majority_share']:.2f}, train "
                          f"{r['train_seconds'] / 60:.1f} min" + (f", retrieval {100 * share:.1f}% of step time"
                                                                  if share is not None else "")
                          + (f", learned {r['learned']})" if "learned" in r else ")"), flush=True)
            if export_on:
                for method in EXPORTS:
                    runs = [r for r in rows if r["shot"] == shot and r["method"] == method]
                    if runs:
                        best = max(runs, key=lambda r: r.get("best_val_acc", 0.0))  # chosen on validation
                        exports.update(export(best, shot, method, episodes, args.epochs, args.max_per_class or None))
            for r in rows:
                r.pop("_cli", None)
    summary = summarize(rows)
    claims = claims_of(rows)
    name = "raml_wordnet_quick" if args.quick else "raml_wordnet"
    setting = {"episodes": episodes, "epochs": args.epochs, "seeds": args.seeds, "eval_seed": 0, "n_way": 5,
               "max_per_class": args.max_per_class or None, "max_passages": args.max_passages,
               "q_query": 5, "encoder": "all-MiniLM-L6-v2, frozen, mean pooling, max_length 64, trainable linear "
                                       "map (identity start)",
               "raml": "metric head, P=3 retrieved passages (flat cosine index), multiview fusion over pooled "
                       "vectors, passage weight 0.5 and logit scale 10 at the start (both learned)",
               "configs": {"raml": RAML_CONFIG, "protonet-text": PROTO_CONFIG}}
    command = " ".join([COMMAND, *argv_used])
    # the machine is shared: the load average says how far the timings are from an idle machine's
    load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
    path = write_results(name, {"command": command, "setting": setting, "summary": summary, "claims": claims,
                                "runs": rows, "registry_entries": exports, "encoding": encoding,
                                "wall_minutes": round((time.perf_counter() - started) / 60, 1),
                                "load_average_at_end": load})
    print(f"wrote {path}\n")
    print_summary(summary, claims)


def print_summary(summary: dict[str, Any], claims: list[dict[str, Any]]) -> None:
    """The table and the claims on stdout, as the run ends."""
    for key, e in summary.items():
        print(f"{key:36s} {100 * e['mean']:.2f} +- {100 * e['ci95_over_episodes']:.2f}  majority share "
              f"{e['majority_share']:.3f}" + (f"  learned {e['learned']}" if "learned" in e else ""))
    for c in claims:
        over = f" over {c['seeds']} seeds" if c.get("unit") == "seeds" else ""
        print(f"{c['id']:56s} {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points{over}: "
              f"{'holds' if c['holds'] else 'does not hold'}")


def export(result: dict[str, Any], shot: int, method: str, episodes: dict[str, int], epochs: int,
           max_per_class: int | None) -> dict[str, Any]:
    """Write the trainable weights of a run as safetensors and register them; returns the registry entry.

    The frozen MiniLM is not in the file (``TextEncoder`` drops it from the state dict and checks its sha256 on
    load), so the checkpoint holds the linear map, and for RAML the fusion block, score head, passage weight and
    logit scale.
    """
    prefix, config = EXPORTS[method]
    name = f"{prefix}-minilm-wordnet-5w{shot}s"
    setting = (f"WordNet 5-way {shot}-shot 5-query, frozen MiniLM, "
               + ("metric head, P=3 retrieved passages" if method == "raml" else "cosine, learned scale"))
    entry = export_and_register(
        name, {**result, "cli": result["_cli"], "best_val_acc": result.get("best_val_acc", 0.0)},
        system="raml" if method == "raml" else "protonet", config=str(ROOT / config), setting=setting,
        command=f"{COMMAND}  (seed {result['seed']}, best validation accuracy of the seeds)",
        notes=f"train with: zoo fit --config {config} --data.k_shot={shot} --trainer.max_epochs={epochs} "
              f"--data.train_episodes={episodes['train']} --data.val_episodes={episodes['val']} "
              f"--data.seed={result['seed']} --seed_everything={result['seed']}"
              + (" --data.max_per_class=" + str(max_per_class) if max_per_class else ""),
        overrides=[*(o for o in result["overrides"] if o.startswith("--data.max_per_class")), f"--data.k_shot={shot}",
                   "--data.eval_seed=0", f"--data.test_episodes={episodes['test']}"])
    print(f"registered {name}: {entry.metrics}", flush=True)
    return {name: entry.__dict__}


if __name__ == "__main__":
    main()
