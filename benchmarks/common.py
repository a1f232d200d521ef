"""What the benchmark scripts share: train a config through the real CLI, test it, export and register it."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from safefiles import atomic_write_text
from zoo.cli.lightning_cli import build_cli
from zoo.hub.pretrained import ROOT, Entry, export_weights, register

RESULTS = ROOT / "benchmarks" / "results"
CSV_LOGGER = str(ROOT / "configs" / "logger" / "csv.yaml")
MIN_SEEDS = 5  # independent training runs behind a claim between trained methods (the protocol)


def machine() -> dict[str, Any]:
    """Where a figure was measured: the README quotes figures with it."""
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine slows timings
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True).stdout.strip()}


def fit_then_test_best(config: str | Path, overrides: list[str], save_dir: str | Path,
                       pretrained: str | None = None) -> tuple[Any, float]:
    """``zoo fit`` of ``config`` + ``overrides`` in this process (CSV log under ``save_dir``, no progress bar), then
    test of its best-on-validation checkpoint. Returns the CLI (the model holds the best weights) and the training
    wall time in seconds; each benchmark reads what it reports from ``cli.trainer.callback_metrics``.
    ``pretrained`` (a registry name) starts training from that checkpoint's weights, as ``zoo fit --pretrained``."""
    cli = build_cli(["fit", "--config", str(config), "--config", CSV_LOGGER, f"--trainer.logger.init_args.save_dir={save_dir}",
                     "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *overrides],
                    run=False)
    if pretrained is not None:
        from zoo.hub.pretrained import load_pretrained_weights

        load_pretrained_weights(cli.model, pretrained)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    train_seconds = time.perf_counter() - start
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return cli, train_seconds


def fit_and_test(config: str, overrides: list[str], save_dir: str | Path) -> dict[str, Any]:
    """``zoo fit`` then test of the best-on-validation checkpoint, in this process, logging to CSV.

    Returns wall-clock training time, the test mean +- 95% CI, the per-episode accuracies (for paired
    comparisons) and the trained CLI objects (the model holds the best weights afterwards).
    """
    cli, train_seconds = fit_then_test_best(config, overrides, save_dir)
    metrics = cli.trainer.callback_metrics
    return {"train_seconds": train_seconds, "epochs": cli.trainer.current_epoch,
            "test_acc": float(metrics["test/acc"]), "test_ci95": float(metrics["test/acc_ci95"]),
            "test_episodes": int(metrics["test/episodes"]),
            "best_val_acc": float(cli.trainer.checkpoint_callback.best_model_score), "selected_epoch": selected_epoch(cli),
            "per_episode": [r["acc"] for r in cli.model.records["test"]], "cli": cli}


def validation_curve(log_dir: str) -> list[dict]:
    """(epoch, step, val/acc) of every validation of a run, from its CSV log: is the budget what limits it?"""
    with open(Path(log_dir) / "metrics.csv") as f:
        return [{"epoch": int(r["epoch"]), "step": int(r["step"]), "val_acc": round(float(r["val/acc"]), 4)}
                for r in csv.DictReader(f) if r.get("val/acc")]


def export_and_register(name: str, result: dict[str, Any], system: str, config: str, setting: str, command: str,
                        notes: str = "", overrides: list[str] | None = None) -> Entry:
    """Write the best weights as safetensors into checkpoints/ and record them in the registry.

    ``result`` is what :func:`fit_and_test` returns (the trained CLI under ``"cli"``); ``overrides`` are the CLI
    options that, after ``config``, give the setting the metrics were measured in.
    """
    cli = result["cli"]
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    sha = export_weights(cli.model, path)
    hp = dict(cli.model.hparams)
    model = {"class_path": hp.pop("_class_path"),
             "init_args": {k: v for k, v in hp.items() if not k.startswith("_")}}
    entry = Entry(name=name, system=system, weights=str(path.relative_to(ROOT)), sha256=sha, model=model,
                  config=str(Path(config).resolve().relative_to(ROOT)), setting=setting,
                  metrics={"test_acc": round(result["test_acc"], 4), "test_ci95": round(result["test_ci95"], 4),
                           "test_episodes": result["test_episodes"], "best_val_acc": round(result["best_val_acc"], 4),
                           "train_seconds": round(result["train_seconds"], 1)},
                  command=command, notes=notes, overrides=list(overrides or []))
    register(entry)
    return entry


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json atomically (with the machine it was measured on)."""
    target = RESULTS / f"{name}.json"
    atomic_write_text(target, json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return target


def claim(claim_id: str, statement: str, a: list[float], b: list[float], *, seeds: int,
          trained: bool) -> dict[str, Any]:
    """A claim over items (episodes, domains, tasks, timing repeats): ``statement`` says that ``a`` exceeds ``b``,
    paired item by item; ``holds`` when the 95% interval of the mean paired difference excludes zero above.

    The unit is the item, so the interval holds the items' variance only. That is the right unit for fixed things -
    two shipped checkpoints, an untrained scorer, repeated timings (``trained=False``, ``seeds=1``). Between methods
    that the benchmark trains (``trained=True``) it leaves run-to-run variance out: such a claim is reported with
    :func:`seed_claim` (the protocol), and ``tests/test_results.py`` only lets a fixed list of pre-protocol claims
    stand on items, each rendered as such in the README.
    """
    from zoo.training.metrics import paired_difference_ci95

    diff, ci95 = paired_difference_ci95(a, b)
    return {"id": claim_id, "statement": statement, "diff": diff, "ci95": ci95, "n": len(a),
            "holds": diff - ci95 > 0, "seeds": seeds, "unit": "items", "trained": trained}


def seed_claim(claim_id: str, statement: str, a_by_seed: list[list[float]], b_by_seed: list[list[float]], *,
               seeds_reason: str | None = None) -> dict[str, Any]:
    """A claim between trained methods under the comparison protocol (README, "Evaluation protocol").

    ``a_by_seed[s]`` / ``b_by_seed[s]``: each method's per-item scores on the test items that training seed ``s``
    shares between them. The interval is over seeds of the paired difference (each seed's mean over its shared
    items, then a t-interval: :func:`zoo.training.metrics.seed_paired_difference_ci95`), ``holds`` when it excludes 0
    above; the per-item interval of all items pooled stays as the second field ``items_ci95``. The protocol asks
    for at least 5 seeds; fewer need ``seeds_reason`` (why a run costs more than the CPU allows).
    """
    from zoo.training.metrics import paired_difference_ci95, seed_paired_difference_ci95

    diff, ci95 = seed_paired_difference_ci95(a_by_seed, b_by_seed)
    pooled_a = [x for run in a_by_seed for x in run]
    pooled_b = [x for run in b_by_seed for x in run]
    out = {"id": claim_id, "statement": statement, "diff": diff, "ci95": ci95, "n": len(a_by_seed),
           "holds": diff - ci95 > 0, "seeds": len(a_by_seed), "unit": "seeds", "trained": True,
           "items": len(pooled_a), "items_ci95": paired_difference_ci95(pooled_a, pooled_b)[1]}
    if len(a_by_seed) < MIN_SEEDS and not seeds_reason:
        raise ValueError(f"claim {claim_id!r}: {len(a_by_seed)} seeds; the protocol asks for at least {MIN_SEEDS} "
                         "(or a seeds_reason saying why a run does not fit)")
    if seeds_reason:
        out["seeds_reason"] = seeds_reason
    return out


def selected_epoch(cli: Any) -> int | None:
    """The epoch of the checkpoint that model selection picked (the best on validation), which every run records:
    two methods are selected alike only if their candidates are the same epochs and the rule is the same."""
    from zoo.hub.checkpoint_io import load_checkpoint

    path = cli.trainer.checkpoint_callback.best_model_path
    return int(load_checkpoint(path)["epoch"]) if path else None
