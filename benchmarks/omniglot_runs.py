"""The Omniglot one-shot challenge on real data: our methods on the 20 official runs of Lake et al. (Science 2015).

    python benchmarks/omniglot_runs.py --methods protonet-ce protonet-glyphs-pretrain   # some methods, 5 seeds each
    python benchmarks/omniglot_runs.py --zero-shot        # the shipped Glyphs checkpoints, no training
    python benchmarks/omniglot_runs.py --quick            # tiny budget, 1 seed, into results/omniglot_runs_quick.json
    python benchmarks/omniglot_runs.py                    # no training: recompute summaries and claims of the file

Every run merges what it measured into benchmarks/results/omniglot_runs.json (under a file lock, so two commands
may run side by side), keeping the other methods' figures with their own command and machine, and recomputes the
claims from the methods present.

Data (shipped with the package, datamodules/images/data/omniglot/): Omniglot's two minimal background sets and the
20 one-shot runs (all_runs.zip) of Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through
probabilistic program induction", Science 350 (2015); github.com/brendenlake/omniglot, MIT licence. Training on 6
of the 8 background alphabets (183 characters, x4 rotations), model selection on 20-way 1-shot episodes of the 2
held-out ones (Sanskrit, Tagalog: 59 characters), test on the 20 runs (20-way 1-shot, one test item per class):
error rate over the 400 test items, as the paper scores it. The paper's models learned from the full 30-alphabet
background set (964 characters); ours from 6 alphabets.

Protocol (README, "Evaluation protocol"). Every method: Conv-4 at 28x28; the same training episodes (20-way 1-shot
5-query, drawn with data seed = the run's seed; ProtoNet's config trains 60-way as Snell et al., MAML's head is
20-way, so all use 20-way here), the same budget (``BUDGET``: epochs x episodes per epoch; MAML/ANIL group them
into meta-batches), the same model selection (best validation accuracy over the same fixed validation episodes,
``eval_seed`` 0; ``selected_epoch`` recorded) and the same 20 test episodes. Seeds vary the initialisation and the
training episodes. Claims are :func:`common.seed_claim` over seeds, each seed's 20 per-run accuracies as its items.
``protonet-glyphs-pretrain`` starts from the registry's ``protonet-conv4-glyphs-5w1s`` (ProtoNet trained on Glyphs,
benchmarks/protonet_glyphs.py) and then trains exactly as ``protonet-ce``: the claim between them is about that
input (pre-training), an ablation. The zero-shot rows are fixed checkpoints tested as they are.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from common import (MIN_SEEDS, RESULTS, ROOT, export_and_register, fit_then_test_best, machine,
                    selected_epoch, seed_claim, validation_curve, write_results)

from safefiles import file_lock
from datamodules.images.omniglot_small import CITATION, PUBLISHED_ERROR, runs_error_rate
from zoo.training.metrics import mean_t_ci95

COMMAND = "python benchmarks/omniglot_runs.py"
PROTO = "configs/protonet/omniglot-small.yaml"
#: key -> (label, config, extra options after the config, registry checkpoint to start from)
METHODS = {
    "protonet-ce": ("ProtoNet (CE)", PROTO, ["--config", "configs/losses/ce.yaml"], None),
    "protonet-pt": ("ProtoNet CE + Proto-Triplet", PROTO, ["--config", "configs/losses/prototriplet.yaml"], None),
    "protonet-icnn": ("ProtoNet CE + ICNN", PROTO, ["--config", "configs/losses/icnn.yaml"], None),
    "protonet-pt-icnn": ("ProtoNet CE + Proto-Triplet + ICNN", PROTO,
                         ["--config", "configs/losses/prototriplet-icnn.yaml"], None),
    "protonet-glyphs-pretrain": ("ProtoNet (CE), Glyphs pre-training then Omniglot-small", PROTO,
                                 ["--config", "configs/losses/ce.yaml"], "protonet-conv4-glyphs-5w1s"),
    "maml": ("MAML", "configs/maml/omniglot-small.yaml", [], None),
    "anil": ("ANIL", "configs/anil/omniglot-small.yaml", [], None),
}
#: The same training episodes and model selection for every method (see the module docstring).
SHAPE = ["--data.train_n_way=20", "--data.train_k_shot=1", "--data.train_q_query=5", "--data.n_way=20",
         "--data.k_shot=1", "--data.q_query=5", "--data.eval_seed=0"]
BUDGET = ["--trainer.max_epochs=8", "--data.train_episodes=64", "--data.val_episodes=60"]
#: MAML/ANIL: a meta-batch of 4 tasks instead of the paper's 16 (16 episodes per step would leave 4 meta-steps per
#: epoch), and 1 inner step in training instead of 5 (second-order MAML through 5 steps costs ~[measured] s per task
#: on one CPU thread); 5 steps at validation and test as the paper. [INTERP] CPU budget, stated in the results.
META = ["--data.episodes_per_batch=4", "--model.init_args.inner_steps=1"]
QUICK = ["--trainer.max_epochs=1", "--data.train_episodes=4", "--data.val_episodes=4"]
#: methods whose best-on-validation seed is exported and registered
REGISTER = {"protonet-ce": "protonet-conv4-omniglot-small-20w1s",
            "protonet-glyphs-pretrain": "protonet-conv4-glyphs-omniglot-small-20w1s",
            "maml": "maml-conv4-omniglot-small-20w1s"}
ZERO_SHOT = ["protonet-conv4-glyphs-5w1s", "protonet-conv4-glyphs-5w5s", "protonet-prototriplet-conv4-glyphs-5w1s",
             "protonet-icnn-conv4-glyphs-5w1s"]
#: (claim id, method a, method b, statement): a has the lower error rate (higher per-run accuracy) than b
CLAIMS = [
    ("protonet-glyphs-pretrain-vs-scratch-omniglot-runs", "protonet-glyphs-pretrain", "protonet-ce",
     "ProtoNet pre-trained on Glyphs, then trained on Omniglot-small, errs less on the 20 Omniglot runs than the same "
     "training from scratch"),
    ("susana-pt-vs-ce-omniglot-runs", "protonet-pt", "protonet-ce",
     "CE + Proto-Triplet errs less than CE alone on the 20 Omniglot runs"),
    ("susana-icnn-vs-ce-omniglot-runs", "protonet-icnn", "protonet-ce",
     "CE + ICNN errs less than CE alone on the 20 Omniglot runs"),
    ("susana-pt-icnn-vs-ce-omniglot-runs", "protonet-pt-icnn", "protonet-ce",
     "CE + Proto-Triplet + ICNN errs less than CE alone on the 20 Omniglot runs"),
    ("maml-vs-protonet-omniglot-runs", "maml", "protonet-ce", "MAML errs less than ProtoNet on the 20 Omniglot runs"),
    ("anil-vs-protonet-omniglot-runs", "anil", "protonet-ce", "ANIL errs less than ProtoNet on the 20 Omniglot runs"),
]


def run_method(key: str, seed: int, overrides: list[str], save_dir: str) -> tuple[dict, object]:
    """Train one method with one seed, test its best-on-validation checkpoint on the 20 runs; the row and the CLI."""
    label, config, extra, pretrained = METHODS[key]
    extra = [str(ROOT / e) if e.endswith(".yaml") else e for e in extra]
    options = [*extra, f"--seed_everything={seed}", f"--data.seed={seed}", *SHAPE, *overrides]
    if key in ("maml", "anil"):
        options += META
    cli, train_seconds = fit_then_test_best(ROOT / config, options, save_dir, pretrained=pretrained)
    per_run = [r["acc"] for r in cli.model.records["test"]]
    curve = validation_curve(cli.trainer.logger.log_dir)
    best_val = float(cli.trainer.checkpoint_callback.best_model_score)
    epochs = cli.trainer.current_epoch
    chosen = selected_epoch(cli)
    row = {"seed": seed, **runs_error_rate(per_run), "per_run_acc": [round(a, 4) for a in per_run],
           "best_val_acc": round(best_val, 4), "selected_epoch": chosen, "epochs": epochs,
           "train_seconds": round(train_seconds, 1), "val_curve": curve,
           # validation still at its best in the last epoch: the budget, not a plateau, ended the training
           "budget_stopped": chosen is not None and chosen == epochs - 1}
    print(f"{label} seed {seed}: error {row['error_rate']:.1f} +- {row['error_ci95']:.1f} % on the 20 runs, val acc "
          f"{100 * best_val:.2f} (epoch {chosen} of {epochs}), trained {train_seconds / 60:.1f} min", flush=True)
    return row, cli


def summarise(rows: list[dict]) -> dict:
    """A method's figures over its seeds: the per-run accuracy averaged over seeds -> error rate with the interval
    over the 20 runs (the paper's unit), and the error rate's interval over seeds (the protocol's unit)."""
    per_run = [statistics.fmean(r["per_run_acc"][i] for r in rows) for i in range(len(rows[0]["per_run_acc"]))]
    over_runs = runs_error_rate(per_run)
    half = mean_t_ci95([r["error_rate"] for r in rows])[1] if len(rows) > 1 else None
    return {"error_rate": over_runs["error_rate"], "error_ci95_runs": over_runs["error_ci95"],
            "error_ci95_seeds": half, "seeds": [r["seed"] for r in rows],
            "budget_stopped_seeds": sum(r["budget_stopped"] for r in rows),
            "selected_epochs": [r["selected_epoch"] for r in rows],
            # validation accuracy gained over the last two epochs (points, mean over seeds): near 0 is a plateau
            "val_gain_last_two_epochs": 100 * statistics.fmean(r["val_curve"][-1]["val_acc"] - r["val_curve"][-3]["val_acc"]
                                                               for r in rows) if len(rows[0]["val_curve"]) >= 3 else None,
            "train_minutes_median": round(statistics.median(r["train_seconds"] for r in rows) / 60, 2)}


def zero_shot(name: str, save_dir: str) -> dict:
    """A shipped checkpoint tested as it is on the 20 runs (the Glyphs checkpoints never saw Omniglot)."""
    import lightning.pytorch as pl

    from datamodules.images import OmniglotSmallDataModule
    from zoo.hub.pretrained import load_pretrained, registry_entry

    model = load_pretrained(name)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=save_dir)
    trainer.test(model, datamodule=OmniglotSmallDataModule(n_way=20, k_shot=1, q_query=5), verbose=False)
    per_run = [r["acc"] for r in model.records["test"]]
    row = {"label": f"{name} (zero-shot)", "setting": registry_entry(name).setting, **runs_error_rate(per_run),
           "per_run_acc": [round(a, 4) for a in per_run]}
    print(f"{name} zero-shot: error {row['error_rate']:.1f} +- {row['error_ci95']:.1f} %", flush=True)
    return row


def claims_from(methods: dict) -> list[dict]:
    """The protocol's claims between the methods present, paired by seed (same training episodes and init seed)."""
    out = []
    for claim_id, a, b, statement in CLAIMS:
        if a not in methods or b not in methods:
            continue
        by_seed_b = {r["seed"]: r["per_run_acc"] for r in methods[b]["runs"]}
        shared = [r for r in methods[a]["runs"] if r["seed"] in by_seed_b]
        if len(shared) < 2:
            continue
        reason = None if len(shared) >= MIN_SEEDS else "the CPU budget of this session fitted fewer seeds"
        out.append(seed_claim(claim_id, statement + " (per-run accuracy, paired by seed)",
                              [r["per_run_acc"] for r in shared], [by_seed_b[r["seed"]] for r in shared],
                              seeds_reason=reason))
    return out


def add_seeds(old: dict, new: dict) -> dict:
    """A method's seeds from two commands, when both trained it alike (config, budget, episodes): the union by seed,
    the newer run of a seed winning, each command named; otherwise the newer measurement replaces the older."""
    same = ("config", "extra_configs", "init_from", "budget_overrides", "shape", "meta_overrides")
    if any(old.get(k) != new.get(k) for k in same):
        return new
    runs = {r["seed"]: r for r in old["runs"]}
    runs.update({r["seed"]: r for r in new["runs"]})
    commands = [c for c in old["command"].split(" ; ") if c != new["command"]] + [new["command"]]
    return {**new, "command": " ; ".join(commands), "runs": [runs[s] for s in sorted(runs)]}


def merge_results(name: str, measured: dict, zero: dict) -> None:
    """Merge this command's methods and zero-shot rows into ``results/<name>.json`` (under a lock: commands for other
    methods may run beside it) and recompute the claims from every method present."""
    target = RESULTS / f"{name}.json"
    with file_lock(target):
        old = json.loads(target.read_text()) if target.is_file() else {}
        methods = dict(old.get("methods", {}))
        for key, new in measured.items():
            methods[key] = add_seeds(methods[key], new) if key in methods else new
        methods = {k: {**methods[k], **summarise(methods[k]["runs"])} for k in METHODS if k in methods}
        path = write_results(name, {
            "command": COMMAND + " (each method's own command is under methods.<key>.command)", "data": CITATION,
            "published_error": PUBLISHED_ERROR,
            "published_note": "Lake et al. (2015) on these 20 runs; those models learned from the full 30-alphabet "
                              "background set (964 characters), ours from 6 minimal-set alphabets (183 characters)",
            "methods": methods, "zero_shot": {**old.get("zero_shot", {}), **zero}, "claims": claims_from(methods)})
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", choices=list(METHODS), default=[])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--zero-shot", action="store_true", help="also test the shipped Glyphs checkpoints")
    parser.add_argument("--quick", action="store_true", help="tiny budget, 1 seed, nothing registered")
    parser.add_argument("--no-register", action="store_true", help="do not export the best checkpoints")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no further seed when the slowest seed so far would end past this wall time "
                             "(the seeds run are recorded; claims with fewer than 5 say why)")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    overrides = QUICK if args.quick else BUDGET
    seeds = args.seeds[:1] if args.quick else args.seeds
    name = "omniglot_runs_quick" if args.quick else "omniglot_runs"
    start, slowest = time.perf_counter(), 0.0
    with tempfile.TemporaryDirectory() as tmp:
        if args.zero_shot:  # written at once, and each method when it is done: a later failure loses nothing
            merge_results(name, {}, {n: {**zero_shot(n, tmp), "command": command} for n in ZERO_SHOT})
        for key in args.methods:
            rows, best = [], None
            for seed in seeds:
                elapsed = time.perf_counter() - start
                if rows and args.max_minutes and elapsed + slowest > 60 * args.max_minutes:
                    print(f"{key}: --max-minutes {args.max_minutes} reached after seeds "
                          f"{[r['seed'] for r in rows]}", flush=True)
                    break
                row, cli = run_method(key, seed, overrides, tmp)
                slowest = max(slowest, time.perf_counter() - start - elapsed)
                rows.append(row)
                if best is None or row["best_val_acc"] > best[0]["best_val_acc"]:  # chosen on validation, not test
                    best = (row, cli)
            label, config, extra, pretrained = METHODS[key]
            measured = {"label": label, "config": config, "extra_configs": extra[1::2], "init_from": pretrained,
                        "command": command, "machine": machine(), "budget_overrides": overrides, "shape": SHAPE,
                        "meta_overrides": META if key in ("maml", "anil") else [], **summarise(rows), "runs": rows}
            if key in REGISTER and not (args.quick or args.no_register):
                register_best(key, *best, command, overrides)
            merge_results(name, {key: measured}, {})
            del best, cli  # the trained models are not needed past here


def register_best(key: str, row: dict, cli, command: str, overrides: list[str]) -> None:
    """Export the seed chosen on validation (never on the runs) into checkpoints/ and the registry."""
    label, config, extra, _ = METHODS[key]
    # the setting of the recorded numbers (`zoo test --pretrained NAME` tests on the runs with it); the loss
    # overlay (--config configs/losses/...) only shapes training and is in the notes' training command
    options = [f"--seed_everything={row['seed']}", f"--data.seed={row['seed']}", *SHAPE, *overrides,
               *(META if key in ("maml", "anil") else [])]
    export_and_register(
        REGISTER[key], {"cli": cli, "test_acc": 1 - row["error_rate"] / 100, "test_ci95": row["error_ci95"] / 100,
                        "test_episodes": 20, "best_val_acc": row["best_val_acc"], "train_seconds": row["train_seconds"]},
        system="maml" if key == "maml" else "protonet", config=config,
        setting="Omniglot one-shot runs of Lake et al. (2015): 20-way 1-shot, 20 runs; trained on the minimal "
                "background sets",
        command=f"{command}  (seed {row['seed']}, best validation accuracy of the seeds)",
        notes=f"{label}; error rate {row['error_rate']:.1f} % over the 400 test items (test_acc is 1 - error). "
              f"Trained with: zoo fit --config {config} {' '.join([*extra, *options])}"
              + (f" starting from the weights of {METHODS[key][3]}" if METHODS[key][3] else "") + f". Data: {CITATION}",
        overrides=options)


if __name__ == "__main__":
    sys.exit(main())
