"""NAP regret benchmark: NAP vs its likelihood-only ablation vs GP-EI vs random search on held-out task families.

For each family (default: shifted/scaled/rotated Hartmann-3 and samples of a 4-D GP prior) this script

1. trains the two stages of NAP: the likelihood pre-training stage from ``configs/nap/<family>-likelihood.yaml``
   (the bar-distribution head alone on >= 1e4 task draws, contexts up to 55 points; it acts by EI computed from
   its buckets: the "likelihood head only" ablation), then PPO fine-tuning from its weights with
   ``configs/nap/<family>.yaml`` (the same model, data and iterations as ``zoo fit --config ...``, without the
   intermediate validation); writes both to ``checkpoints/nap[-sl]-<family>.safetensors`` and registers them
   (with the regret they reach) in ``checkpoints/registry.yaml``;
2. runs every method on the family's fixed test tasks (test functions x 5 initial designs = the runs, pools
   of 1,000 candidates), 5 initial points then 50 trials;
3. reports the mean normalised regret ``1 - best normalised value`` with its 95% CI (1.96 std / sqrt(n) over the
   runs) after 10, 25 and 50 trials, and the mean decision time per step of NAP and GP-EI (one task at a time,
   on the same runs: GP-EI's evaluation runs and ``--timing-tasks`` NAP runs);
4. measures the diagnostics of :mod:`zoo.methods.nap_diagnostics` (does the network use its history?) on
   ``--diagnostic-tasks`` validation functions, and writes the issue's claims: NAP below random search and below
   GP-EI at 50 trials (``benchmarks.common.seed_claim``: ``--train-seeds`` PPO seeds, each paired with random
   search drawn under its own key over the same runs), and NAP deciding >= 10x faster than GP-EI
   (``common.claim`` over the timed runs of the registered model; its reference path is timed on the same runs
   and must make the same choices).

Stage 1 can come from elsewhere: ``--pretrained runs/nap-pretrain-<family>`` (a ``benchmarks/nap_pretrain.py``
run, trained in resumable chunks with its learning curve, which goes into the results) or ``--pretrained
<weights>.safetensors`` (e.g. the registered ``checkpoints/nap-sl-hartmann3.safetensors``).

Outputs ``benchmarks/results/nap.json``, ``benchmarks/results/nap_regret.png`` and a markdown table on stdout
(``--quick``: a few iterations, tasks and trials, to ``nap_quick.*``, checkpoints to a temporary directory).

    python benchmarks/nap_regret.py                 # full: ~10 min per family on 2 cores (see README)
    python benchmarks/nap_regret.py --quick         # end-to-end check in a few minutes
    python benchmarks/nap_regret.py --skip-train    # re-evaluate the checkpoints already in checkpoints/
    python benchmarks/nap_regret.py --from-registry --test-tasks 5 --threads 1   # check the registered numbers
    python benchmarks/nap_regret.py --families gp-prior-d4 hartmann3 --pretrained runs/nap-pretrain-gp-prior-d4 \
        checkpoints/nap-sl-hartmann3.safetensors --train-seeds 3 --test-tasks 5 --threads 1   # nap.json (README)

Families measured with the same settings accumulate in one results file, so the two families can run as two
processes side by side (``--families hartmann3``, ``--families gp-prior-d4``); the plot shows every family in it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lightning.pytorch as pl
from common import machine

from safefiles import atomic_path, atomic_write_text
from datamodules.bo.base import FunctionDataModule
from datamodules.bo.tasks import collate_tasks
from zoo.methods.bo import GPEI, NAPStrategy, RandomSearch, load_nap, run_bo, save_nap
from zoo.training.metrics import mean_ci95
from lightning.pytorch.cli import instantiate_module

from zoo.methods.nap import NAPModule

FAMILY_SHORT = {"hartmann3": "Hartmann-3", "gp-prior-d4": "GP prior D=4"}
FAMILY_TEXT = {
    "hartmann3": "Hartmann-3 under random shifts (<=0.1), scalings (<=10%) and rotations",
    "gp-prior-d4": "samples of a 4-D GP prior, RBF, lengthscale ~ U(0.2, 0.5)",
}


def _import(dotted: str):
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def load_config(name: str) -> dict[str, Any]:
    """``configs/nap/<name>.yaml`` with its ``__base__`` files merged in (what ``zoo fit --config`` reads)."""
    from zoo.cli.compose import load_composed

    path = ROOT / "configs" / "nap" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (ROOT / "configs" / "nap").glob("*.yaml"))
        raise SystemExit(f"no config {path}; configs: {known}")
    cfg = load_composed(path)
    cfg["_path"] = str(path.relative_to(ROOT))
    return cfg


def build_data(cfg: dict[str, Any], **overrides: Any) -> FunctionDataModule:
    args = dict(cfg["data"]["init_args"])
    args.update(overrides)
    return _import(cfg["data"]["class_path"])(**args)


def train(cfg: dict[str, Any], model_args: dict[str, Any], iterations: int | None, log_dir: Path, seed: int = 0
          ) -> tuple[NAPModule, float, dict[str, float]]:
    """Trains one model as ``zoo fit`` would (config epochs and tasks), minus the periodic validation; ``seed``
    offsets the config's global seed and its training tasks' seed (seed 0: the config as it is)."""
    pl.seed_everything(int(cfg.get("seed_everything", 0)) + seed, verbose=False)
    dm = build_data(cfg, seed=int(cfg["data"]["init_args"].get("seed", 0)) + seed)
    model = instantiate_module(pl.LightningModule, {"_class_path": cfg["model"]["class_path"], **model_args})
    epochs = int(cfg["trainer"]["max_epochs"])
    kwargs: dict[str, Any] = {}
    if iterations is not None:  # --quick: a few iterations of the first epoch
        epochs, kwargs["limit_train_batches"] = 1, iterations
    from lightning.pytorch.loggers import CSVLogger

    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(str(log_dir)),
                         log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, **kwargs)
    start = time.perf_counter()
    trainer.fit(model, dm)
    seconds = time.perf_counter() - start
    last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    return model.eval(), seconds, last


def evaluate(strategies: list, tasks: list[dict[str, torch.Tensor]], budget: int, chunk: int) -> dict[str, Any]:
    """Runs each strategy on all tasks (in chunks of ``chunk`` tasks for the batched ones)."""
    out: dict[str, Any] = {}
    for strategy in strategies:
        regrets, seconds, decisions, per_run = [], 0.0, 0, []
        size = 1 if isinstance(strategy, GPEI) else chunk
        for start in range(0, len(tasks), size):
            batch = collate_tasks(tasks[start:start + size])
            res = run_bo(strategy, batch, budget, key=start)
            regrets.append(res.regret)
            seconds += float(res.step_seconds.sum())
            decisions += res.actions.numel()
            per_run.append(float(res.step_seconds.sum()) / res.actions.numel())
        out[strategy.name] = {"regret": torch.cat(regrets), "seconds_per_decision": seconds / decisions}
        if size == 1:  # one task per call: each run's own time per decision (paired timing claims)
            out[strategy.name]["run_seconds_per_decision"] = per_run
        print(f"    {strategy.name:8s} final regret {float(torch.cat(regrets)[:, -1].mean()):.4f} "
              f"({seconds / decisions * 1e3:.1f} ms/decision amortised)", flush=True)
    return out


def summarise(regret: torch.Tensor, trials: list[int]) -> dict[str, Any]:
    at = {}
    for t in trials:
        mean, ci = mean_ci95(regret[:, t])
        at[str(t)] = {"mean": mean, "ci95": ci}
    curve = [mean_ci95(regret[:, t]) for t in range(regret.shape[1])]
    return {"at": at, "curve_mean": [c[0] for c in curve], "curve_ci95": [c[1] for c in curve],
            "runs": regret.shape[0]}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results["families"])
    fig, axes = plt.subplots(1, len(fams), figsize=(5.5 * len(fams), 4), squeeze=False)
    styles = {"nap": ("C3", "NAP"), "nap-ei": ("C1", "likelihood only (EI)"), "gp-ei": ("C0", "GP-EI"),
              "random": ("C7", "random search")}
    for ax, fam in zip(axes[0], fams):
        for name, res in results["families"][fam]["methods"].items():
            color, label = styles.get(name, (None, name))
            m = torch.tensor(res["curve_mean"])
            c = torch.tensor(res["curve_ci95"])
            t = torch.arange(len(m))
            ax.plot(t, m.clamp_min(1e-4), color=color, label=label)
            ax.fill_between(t, (m - c).clamp_min(1e-4), (m + c).clamp_min(1e-4), color=color, alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel(f"trial (after {results['settings']['n_init']} initial points)")
        ax.set_ylabel("normalised regret (0 drawn at 1e-4)")
        runs = next(iter(results["families"][fam]["methods"].values()))["runs"]
        ax.set_title(f"{fam} ({runs} runs)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")  # the temporary name ends in .tmp, so the format is explicit
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    trials = results["settings"]["report_trials"]
    lines = ["| family | method | " + " | ".join(f"regret @{t}" for t in trials) + " | s / decision |",
             "|---|---|" + "---|" * len(trials) + "---|"]
    for fam, fres in results["families"].items():
        for name, res in fres["methods"].items():
            cells = [f"{res['at'][str(t)]['mean']:.4f} ± {res['at'][str(t)]['ci95']:.4f}" for t in trials]
            sec = fres["decision_seconds"].get(name)
            lines.append(f"| {fam} | {name} | " + " | ".join(cells) + f" | {sec:.4f} |" if sec is not None else
                         f"| {fam} | {name} | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def registry_entries(results: dict[str, Any], families: list[str]) -> dict[str, Any]:
    entries = {}
    for fam in families:
        fres = results["families"][fam]
        for kind, info in fres["checkpoints"].items():
            res = fres["methods"]["nap" if kind == "nap" else "nap-ei"]
            entries[info["name"]] = {
                "system": "nap",
                "weights": info["weights"],
                "sha256": info["sha256"],
                "model": info["model"],
                "config": fres["config"] if kind == "nap" else fres.get("pretrain_config", fres["config"]),
                "setting": (f"{FAMILY_TEXT.get(fam, fam)}; pools of {results['settings']['eval_num_candidates']} "
                            f"candidates, {results['settings']['n_init']} initial points + "
                            f"{results['settings']['budget']} trials"
                            + (f"; PPO fine-tuned from nap-sl-{fam}" if kind == "nap" else
                               "; likelihood pre-training stage only, acting by EI on its buckets")),
                "metrics": {**{f"test/regret@{t}": round(res["at"][str(t)]["mean"], 5)
                               for t in results["settings"]["report_trials"]},
                            **{f"test/regret@{t}_ci95": round(res["at"][str(t)]["ci95"], 5)
                               for t in results["settings"]["report_trials"]},
                            "test_runs": res["runs"]},
                "command": fres["command"],
            }
    return entries


def log_wandb(results: dict[str, Any]) -> None:
    import wandb

    from zoo.cli.wandb_logger import resolve_wandb_mode

    run = wandb.init(project="metazoo", job_type="benchmark", name="nap-regret", mode=resolve_wandb_mode("auto"),
                     dir=str(ROOT / "runs"), config=results["settings"])
    for fam, fres in results["families"].items():
        names = list(fres["methods"])
        xs = list(range(len(fres["methods"][names[0]]["curve_mean"])))
        run.log({f"nap/{fam}/regret": wandb.plot.line_series(
            xs=xs, ys=[fres["methods"][n]["curve_mean"] for n in names], keys=names,
            title=f"NAP regret on {fam}", xname="trial")})
    run.finish()


def merged(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """``results`` plus the families of an earlier run in ``out`` measured with the same settings, so that one
    family per process (``--families hartmann3`` and ``--families gp-prior-d4`` side by side) fills one file."""
    if not out.is_file():
        return results
    old = json.loads(out.read_text())
    same = all(old.get("settings", {}).get(k) == results["settings"].get(k)
               for k in ("seeds_per_function", "budget", "n_init", "report_trials", "quick"))
    if not same:
        return results
    families = {**old.get("families", {}), **results["families"]}
    runs = {k: v for k, v in {**old.get("runs", {}), **results.get("runs", {})}.items()
            if k.removeprefix("nap-sl-") in families}
    return {**results, "settings": {**results["settings"], "families": list(families)}, "families": families,
            **({"runs": runs} if runs else {})}


def write_json(results: dict[str, Any], out: Path) -> None:
    atomic_write_text(out, json.dumps(results, indent=1))


def retest_from_registry(families: list[str], test_tasks: int | None, seeds: int, budget: int, n_init: int,
                         chunk: int) -> bool:
    """Re-runs the registered ``nap[-sl]-<family>`` checkpoints (loaded by name, sha256-verified) on the family's
    fixed test tasks and compares the regret with the metrics their registry entries record (rounded as recorded).
    Writes and registers nothing; returns whether every number was reproduced."""
    from zoo.hub.pretrained import registry_entry

    ok = True
    for fam in families:
        cfg = load_config(fam)
        dm = build_data(cfg, test_seeds=seeds, eval_n_init=n_init, **({"test_tasks": test_tasks} if test_tasks else {}))
        tasks = dm.fixed_tasks("test")
        for name, acq in ((f"nap-{fam}", "mlp"), (f"nap-sl-{fam}", "ei")):
            entry = registry_entry(name)
            runs = evaluate([NAPStrategy(load_nap(name), acq, name=name)], tasks, budget, chunk)[name]["regret"]
            for key, recorded in entry.metrics.items():
                if key == "test_runs":
                    got = runs.shape[0]
                else:
                    t = int(key.split("@")[1].removesuffix("_ci95"))
                    mean, ci = mean_ci95(runs[:, t])
                    got = round(ci if key.endswith("_ci95") else mean, 5)
                same = got == recorded
                ok &= same
                print(f"  {name:22s} {key:22s} recorded {recorded!s:>8s} now {got!s:>8s} {'ok' if same else 'DIFFERS'}")
    return ok


def stage_args(cfg: dict[str, Any], budget: int, iterations: int | None) -> dict[str, Any]:
    """The model arguments of a config, with the evaluation budget and (``--iterations``) a shortened schedule."""
    model_args = dict(cfg["model"]["init_args"])
    model_args["eval_budget"] = budget
    if iterations is not None and model_args.get("scheduler"):
        sched = model_args["scheduler"] = {**model_args["scheduler"]}
        warmup = sched.get("init_args", {}).get("warmup_steps", 0)
        sched["init_args"] = {**sched.get("init_args", {}), "total_steps": iterations,
                              "warmup_steps": min(warmup, max(1, iterations // 4))}
    return model_args


def per_run_decisions(strategy, tasks: list[dict[str, torch.Tensor]], budget: int
                      ) -> tuple[list[float], list[torch.Tensor]]:
    """Mean wall time of one decision in each run, the method serving one task at a time, and each run's
    choices."""
    res = [run_bo(strategy, collate_tasks([task]), budget, key=10_000 + i) for i, task in enumerate(tasks)]
    return [float(r.step_seconds.sum()) / budget for r in res], [r.actions for r in res]


def train_stage(cfg: dict[str, Any], model_args: dict[str, Any], iterations: int | None, seed: int
                ) -> tuple[NAPModule, dict[str, Any]]:
    """One training stage (:func:`train`) and what the results record about it."""
    with tempfile.TemporaryDirectory() as logs:
        model, seconds, last = train(cfg, model_args, iterations, Path(logs), seed)
    info = {"seconds": round(seconds, 1), "iterations": model.iterations_done, "seed": seed,
            "task_draws": model.iterations_done * build_data(cfg).tasks_per_batch, "last": last}
    print(f"  trained: {info['iterations']} iterations ({info['task_draws']} task draws) in {seconds:.0f} s; "
          f"{last}", flush=True)
    return model, info


def pretrained_stage(source: Path, name: str) -> tuple[NAPModule, dict[str, Any]]:
    """Stage 1 trained elsewhere: a ``benchmarks/nap_pretrain.py`` run directory (weights and learning curve) or
    a weights file."""
    path = source / f"{name}.safetensors" if source.is_dir() else source
    if not path.is_file():
        raise SystemExit(f"--pretrained {source}: no {path} (expected a benchmarks/nap_pretrain.py run directory "
                         f"or a .safetensors file written by zoo.methods.bo.save_nap)")
    info: dict[str, Any] = {"source": str(path)}
    curve = source / "curve.json" if source.is_dir() else None
    if curve is not None and curve.is_file():
        rec = json.loads(curve.read_text())
        info.update({k: rec.get(k) for k in ("seconds", "iterations", "stopped_by", "command", "metric", "tasks")})
        info["curve"] = rec["points"]
    return load_nap(path), info


def earlier_stage_one(out: Path, fam: str, weights: Path) -> dict[str, Any]:
    """Provenance of a stage-1 weights file that an earlier run recorded in ``out`` (the same sha256): that run's
    training record of the head and the command that trained it, so that a re-run of stage 2 from the shipped
    head (``--pretrained checkpoints/nap-sl-<family>.safetensors``) still says how the head was made (and
    ``benchmarks/reproduce.py`` still runs that command). Empty when nothing recorded matches."""
    from safefiles import sha256_file

    if not out.is_file() or not weights.is_file():
        return {}
    old = json.loads(out.read_text()).get("families", {}).get(fam, {})
    if old.get("checkpoints", {}).get("nap-sl", {}).get("sha256") != sha256_file(weights):
        return {}
    record = {k: v for k, v in old.get("training", {}).get("nap-sl", {}).items() if k != "source"}
    return {**record, "command": record.get("command") or old.get("command")}


DIAGNOSTIC_CONTEXTS = [5, 20, 50]


def diagnostics(cfg: dict[str, Any], models: dict[str, NAPModule], n_tasks: int, n_init: int,
                budget: int) -> dict[str, Any]:
    """The three checks of :mod:`zoo.methods.nap_diagnostics` on the family's validation functions (pools of the
    evaluation size, one per function; held out from training): held-out NLL and rank correlation of the predicted
    mean at 5, 20 and 50 context points, and the acquisition's rank correlation under its own vs another task's
    history of 20 points."""
    from zoo.methods.nap_diagnostics import context_curves, history_swap_correlation, summarise_diagnostics

    tasks = build_data(cfg, val_tasks=n_tasks, val_seeds=1).fixed_tasks("val")
    out = {}
    for kind, af in (("nap", "mlp"), ("nap-sl", "ei")):
        net = models[kind].net
        curves = context_curves(net, tasks, DIAGNOSTIC_CONTEXTS)
        swap = history_swap_correlation(net, tasks, 20, af_name=af, n_init=n_init, budget=budget)
        out[kind] = {"acquisition": af, **summarise_diagnostics(curves, swap)}
        d = out[kind]
        print(f"    {kind}: NLL " + ", ".join(f"@{n} {d['nll'][str(n)]['mean']:.3f}" for n in DIAGNOSTIC_CONTEXTS)
              + "; spearman " + ", ".join(f"@{n} {d['spearman'][str(n)]['mean']:.3f}" for n in DIAGNOSTIC_CONTEXTS)
              + f"; history swap {d['history_swap_spearman']['mean']:.3f}", flush=True)
    return out


def family_claims(fam: str, nap_by_seed: list[list[float]], random_by_seed: list[list[float]],
                  gp_ei: list[float], nap_times: list[float], gp_times: list[float],
                  seeds_reason: str | None) -> list[dict[str, Any]]:
    """The issue's claims for one family: NAP's regret at the budget below random search's and GP-EI's under the
    comparison protocol (``common.seed_claim``: per training seed, the runs = test functions x initial designs
    paired; the interval over seeds; random search drawn with the seed's own key; GP-EI is untrained and
    deterministic, its runs serve every seed), and NAP deciding >= 10x faster than GP-EI (paired over the timed
    runs, a fixed model: ``claim(..., trained=False)``, on ``log10`` of the per-decision time ratio minus 1, so
    that it holds when the interval of the ratio's geometric mean lies above 10)."""
    from common import claim, seed_claim

    text = FAMILY_SHORT.get(fam, fam)
    budget_note = f"{len(nap_by_seed[0])} runs per seed"
    out = [seed_claim(f"nap-vs-random-{fam}", f"NAP regret below random search at the budget, {text} "
                      f"({budget_note})", random_by_seed, nap_by_seed, seeds_reason=seeds_reason),
           seed_claim(f"nap-vs-gp-ei-{fam}", f"NAP regret below GP-EI at the budget, {text} ({budget_note})",
                      [gp_ei] * len(nap_by_seed), nap_by_seed, seeds_reason=seeds_reason)]
    speed_id = "nap-decision-speedup-vs-gp-ei" + ("" if fam == "gp-prior-d4" else f"-{fam}")
    out.append(claim(speed_id, f"NAP decides >= 10x faster than GP-EI, {text} (diff: mean log10(GP-EI s / NAP s) "
                               f"- 1 over runs, one task at a time, pools of 1,000)",
                     [math.log10(t) for t in gp_times], [math.log10(t) + 1 for t in nap_times], seeds=1, trained=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["hartmann3", "gp-prior-d4"])
    ap.add_argument("--quick", action="store_true", help="a few iterations, tasks and trials: proves the pipeline")
    ap.add_argument("--seeds", type=int, default=5, help="initial designs per test function")
    ap.add_argument("--test-tasks", type=int, default=None, help="test functions per family (config: 10)")
    ap.add_argument("--budget", type=int, default=50, help="trials after the initial design")
    ap.add_argument("--n-init", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=None, help="override the config's PPO iterations")
    ap.add_argument("--skip-train", action="store_true", help="evaluate the checkpoints in --checkpoint-dir")
    ap.add_argument("--pretrained", nargs="+", default=None,
                    help="stage 1 is not trained here: per family (in --families order), a benchmarks/nap_pretrain.py "
                         "run directory (its nap-sl-<family>.safetensors and learning curve) or a .safetensors file")
    ap.add_argument("--train-seeds", type=int, default=1,
                    help="PPO fine-tuning seeds (stage 2), each from the same stage-1 head")
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=10, help="tasks per batched NAP/random run")
    ap.add_argument("--timing-tasks", type=int, default=10,
                    help="runs timed one task at a time for NAP (paired with GP-EI's, which always runs so)")
    ap.add_argument("--diagnostic-tasks", type=int, default=20, help="validation functions for the diagnostics")
    ap.add_argument("--wandb", action="store_true", help="also log the curves as W&B line plots")
    ap.add_argument("--from-registry", action="store_true",
                    help="re-test the registered checkpoints against their recorded regret; no training or writing")
    args = ap.parse_args()
    if args.pretrained and len(args.pretrained) != len(args.families):
        raise SystemExit(f"--pretrained needs one directory or weights file per family: {len(args.families)} "
                         f"families ({args.families}), {len(args.pretrained)} given")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*(does not have many workers|LeafSpec|treespec).*")
    if args.from_registry:
        ok = retest_from_registry(args.families, args.test_tasks, args.seeds, args.budget, args.n_init, args.chunk)
        raise SystemExit(0 if ok else 1)

    if args.quick:
        iterations = args.iterations or 2
        test_tasks, seeds, budget = args.test_tasks or 2, min(args.seeds, 2), min(args.budget, 25)
        out = Path(args.out or ROOT / "benchmarks" / "results" / "nap_quick.json")
        ckpt_dir = Path(args.checkpoint_dir or tempfile.mkdtemp(prefix="nap-quick-"))
    else:
        iterations, test_tasks, seeds, budget = args.iterations, args.test_tasks, args.seeds, args.budget
        out = Path(args.out or ROOT / "benchmarks" / "results" / "nap.json")
        ckpt_dir = Path(args.checkpoint_dir or ROOT / "checkpoints")
    trials = [t for t in (10, 25, 50) if t <= budget] or [budget]
    results: dict[str, Any] = {"command": "python benchmarks/nap_regret.py" + (" --quick" if args.quick else ""),
                               "settings": {
        "families": args.families, "seeds_per_function": seeds, "budget": budget, "n_init": args.n_init,
        "report_trials": trials, "quick": args.quick, "threads": args.threads,
        "regret": "1 - best normalised value found (y min-max normalised over each task's pool)",
        "ci95": "1.96 * sample std / sqrt(runs)",
        "torch": torch.__version__}, "families": {}}

    for fam in args.families:
        cfg, pre_cfg = load_config(fam), load_config(f"{fam}-likelihood")
        print(f"== {fam} ({pre_cfg['_path']} then {cfg['_path']})", flush=True)
        fres: dict[str, Any] = {"config": cfg["_path"], "pretrain_config": pre_cfg["_path"],
                                "command": " ".join(["python", *sys.argv]), "training": {}, "checkpoints": {}}
        # stage 1 (nap-sl): the likelihood head alone, on many tasks; stage 2 (nap): PPO fine-tuning from it
        models: dict[str, NAPModule] = {}
        from safefiles import sha256_file

        sl_name, nap_name = f"nap-sl-{fam}", f"nap-{fam}"
        sl_path = ckpt_dir / f"{sl_name}.safetensors"
        if args.skip_train:
            models["nap-sl"], info = load_nap(sl_path), {"seconds": None}
        elif args.pretrained:
            models["nap-sl"], info = pretrained_stage(Path(args.pretrained[args.families.index(fam)]), sl_name)
            if "command" not in info:  # a weights file: keep what an earlier run recorded of how it was trained
                info.update(earlier_stage_one(out, fam, Path(info["source"])))
            if Path(info["source"]).resolve() != sl_path.resolve():
                save_nap(models["nap-sl"], sl_path)
        else:
            print("  training nap-sl ...", flush=True)
            models["nap-sl"], info = train_stage(pre_cfg, stage_args(pre_cfg, budget, iterations), iterations, 0)
            save_nap(models["nap-sl"], sl_path)
        fres["training"]["nap-sl"] = info
        fres["checkpoints"]["nap-sl"] = {"name": sl_name, "weights": os.path.relpath(sl_path, ROOT),
                                         "sha256": sha256_file(sl_path),
                                         "model": models["nap-sl"].inference_config()}
        nap_path = ckpt_dir / f"{nap_name}.safetensors"
        seed_models = []
        for seed in range(1 if args.skip_train else args.train_seeds):
            if args.skip_train:
                seed_models.append(load_nap(nap_path))
                fres["training"]["nap"] = {"seconds": None}
                continue
            print(f"  training nap (PPO seed {seed}) ...", flush=True)
            margs = stage_args(cfg, budget, iterations)
            margs.update(init_from=str(sl_path), seed=seed)
            model, info = train_stage(cfg, margs, iterations, seed)
            seed_models.append(model)
            fres["training"].setdefault("nap_by_seed", []).append(info)
            if seed == 0:  # the registered checkpoint
                fres["training"]["nap"] = info
                save_nap(model, nap_path)
        models["nap"] = seed_models[0]
        fres["checkpoints"]["nap"] = {"name": nap_name, "weights": os.path.relpath(nap_path, ROOT),
                                      "sha256": sha256_file(nap_path), "model": models["nap"].inference_config()}
        dm = build_data(cfg, test_seeds=seeds, eval_n_init=args.n_init,
                        **({"test_tasks": test_tasks} if test_tasks else {}))
        results["settings"]["eval_num_candidates"] = dm.eval_num_candidates
        tasks = dm.fixed_tasks("test")
        print(f"  evaluating on {len(tasks)} runs ...", flush=True)
        strategies = [NAPStrategy(models["nap"], "mlp", name="nap"),
                      NAPStrategy(models["nap-sl"], "ei", name="nap-ei"), GPEI(seed=0), RandomSearch(seed=0)]
        runs = evaluate(strategies, tasks, budget, args.chunk)
        fres["methods"] = {name: summarise(r["regret"], trials) for name, r in runs.items()}
        # every training seed against random search drawn with that seed's key (seed 0: the runs above)
        nap_by_seed, random_by_seed = [runs["nap"]["regret"][:, budget].tolist()], \
            [runs["random"]["regret"][:, budget].tolist()]
        for seed, model in enumerate(seed_models[1:], start=1):
            more = evaluate([NAPStrategy(model, "mlp", name="nap"), RandomSearch(seed=seed)], tasks, budget,
                            args.chunk)
            nap_by_seed.append(more["nap"]["regret"][:, budget].tolist())
            random_by_seed.append(more["random"]["regret"][:, budget].tolist())
        fres["by_seed"] = {"regret_at_budget_mean": {
            "nap": [sum(r) / len(r) for r in nap_by_seed], "random": [sum(r) / len(r) for r in random_by_seed]},
            "gp-ei": float(runs["gp-ei"]["regret"][:, budget].mean())}
        # per-decision times, one task at a time, on the same runs for NAP and GP-EI (paired); NAP's reference
        # (unsplit, uncached) path on the same runs says what the inference path saves and that it decides alike
        n_timing = min(args.timing_tasks, len(tasks))
        nap_times, nap_actions = per_run_decisions(strategies[0], tasks[:n_timing], budget)
        ref_times, ref_actions = per_run_decisions(NAPStrategy(models["nap"], "mlp", name="nap", split=False),
                                                   tasks[:n_timing], budget)
        gp_times = runs["gp-ei"]["run_seconds_per_decision"][:n_timing]
        fres["decision_seconds"] = {
            "nap": sum(nap_times) / n_timing,
            "nap-reference-path": sum(ref_times) / n_timing,
            "nap-ei": sum(per_run_decisions(strategies[1], tasks[:min(3, n_timing)], budget)[0]) / min(3, n_timing),
            "gp-ei": sum(gp_times) / n_timing,
            "random": runs["random"]["seconds_per_decision"],
        }
        fres["decision_seconds_batched"] = {k: v["seconds_per_decision"] for k, v in runs.items()}
        fres["decision_timing"] = {"runs": n_timing, "nap": nap_times, "gp-ei": gp_times,
                                   "nap-reference-path": ref_times,
                                   "same_decisions_as_reference_path": all(
                                       torch.equal(a, b) for a, b in zip(nap_actions, ref_actions))}
        print("  diagnostics ...", flush=True)
        fres["diagnostics"] = diagnostics(cfg, models, args.diagnostic_tasks, args.n_init, budget)
        n_seeds = len(nap_by_seed)
        reason = None if n_seeds >= 5 else (
            f"{n_seeds} PPO fine-tuning seeds from one stage-1 likelihood head: stage 1 "
            f"({fres['training']['nap-sl'].get('seconds') or '?'} s) is trained once, and each seed's PPO stage "
            f"plus its evaluation on {len(tasks)} runs is what the ~25-minute budget of one benchmark command on a "
            f"shared 2-core CPU allows; GP-EI is untrained and deterministic (seeded fit), its runs serve every seed")
        fres["claims"] = family_claims(fam, nap_by_seed, random_by_seed, runs["gp-ei"]["regret"][:, budget].tolist(),
                                       nap_times, gp_times, reason)
        for c in fres["claims"]:
            print(f"  claim {c['id']}: {c['diff']:+.4f} +- {c['ci95']:.4f} (n={c['n']}) holds={c['holds']}", flush=True)
        results["families"][fam] = fres
        if not args.quick:
            from zoo.hub.pretrained import Entry, register

            for name, fields in registry_entries(results, [fam]).items():
                register(Entry(name=name, **fields))
        if fres["training"]["nap-sl"].get("command"):  # stage 1 ran as its own command (benchmarks/nap_pretrain.py)
            results.setdefault("runs", {})[f"nap-sl-{fam}"] = {"command": fres["training"]["nap-sl"]["command"]}
        results = merged(results, out)
        results["claims"] = [c for f in results["families"].values() for c in f.get("claims", [])]
        results["machine"] = machine()
        write_json(results, out)  # after every family, so a long run that is stopped keeps what it finished

    png = out.with_name(out.stem + "_regret.png") if args.quick else out.with_name("nap_regret.png")
    plot(results, png)
    if args.wandb:
        log_wandb(results)
    print()
    print(markdown(results))
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} and "
          f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}"
          + ("" if args.quick else "; registered nap[-sl]-<family> in checkpoints/registry.yaml"))


if __name__ == "__main__":
    main()
