"""NAP stage 1 (the likelihood head) with its learning curve: does the held-out NLL fall with context size yet?

Trains ``configs/nap/<family>-likelihood.yaml`` exactly as ``zoo fit --config`` would (same model, data, optimiser
and schedule; no BO validation rollouts) and, after every training epoch, measures on the family's validation
functions (pools of the evaluation size, held out from training) the held-out NLL of the bar distribution with 5
and 50 context points (:func:`zoo.methods.nap_diagnostics.context_curves`). That curve is what says whether the budget,
not the model, is what stops in-context regression: an NLL at 50 points below the NLL at 5 beyond its interval
means the head uses its context.

The run is resumable in chunks (each heavy command <= 25 min): ``--max-minutes`` is the wall-clock limit of the
whole run (Lightning's ``max_time``, whose elapsed time is stored in ``last.ckpt``), and ``--resume`` continues
from ``<out-dir>/last.ckpt``. Every epoch writes ``<out-dir>/curve.json`` and
``<out-dir>/nap-sl-<family>.safetensors`` (``zoo.methods.bo.save_nap``), so a stopped chunk keeps what it finished;
``benchmarks/nap_regret.py --pretrained <out-dir>`` then uses those weights and records the curve in ``nap.json``.

    python benchmarks/nap_pretrain.py --family gp-prior-d4 --max-minutes 22             # chunk 1 (what nap.json holds)
    python benchmarks/nap_pretrain.py --quick                                          # end-to-end check
    python benchmarks/nap_pretrain.py --family gp-prior-d4 --max-minutes 40 --resume    # chunk 2 (40 min in all)
    python benchmarks/nap_pretrain.py --family gp-prior-d4 --network-init official --max-minutes 6 \
        --out-dir runs/nap-pretrain-gp-prior-d4-official-init                          # the initialisation ablation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import instantiate_module
from nap_regret import build_data, load_config, stage_args

from safefiles import atomic_write_text
from zoo.methods.bo import save_nap
from zoo.methods.nap_diagnostics import context_curves, summarise_diagnostics

CURVE_CONTEXTS = [5, 50]


class ContextCurve(Callback):
    """After each training epoch: held-out NLL at 5 and 50 context points on fixed validation tasks, appended to
    ``curve.json``; the stage-1 weights are exported beside it."""

    def __init__(self, tasks: list[dict[str, torch.Tensor]], out_dir: Path, family: str, command: str):
        self.tasks, self.out_dir, self.family, self.command = tasks, out_dir, family, command
        path = out_dir / "curve.json"
        self.record: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"points": []}
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        curves = context_curves(module.net, self.tasks, CURVE_CONTEXTS)
        s = summarise_diagnostics(curves, [0.0])
        lo, hi = CURVE_CONTEXTS
        point = {"epoch": trainer.current_epoch, "step": module.iterations_done,
                 "task_draws": module.iterations_done * trainer.datamodule.tasks_per_batch,
                 "train_loss_nll": round(float(trainer.callback_metrics.get("train/loss_nll", float("nan"))), 4),
                 **{f"nll@{n}": round(s["nll"][str(n)]["mean"], 4) for n in CURVE_CONTEXTS},
                 **{f"spearman@{n}": round(s["spearman"][str(n)]["mean"], 4) for n in CURVE_CONTEXTS},
                 f"nll_{hi}_minus_{lo}": round(s[f"nll_{hi}_minus_{lo}"]["diff"], 4),
                 f"nll_{hi}_minus_{lo}_ci95": round(s[f"nll_{hi}_minus_{lo}"]["ci95"], 4)}
        self.record["points"].append(point)
        self.record.setdefault("command", self.command)
        self.record.update(family=self.family, contexts=CURVE_CONTEXTS,
                           tasks=len(self.tasks), metric="held-out NLL of the bar distribution on the validation "
                           "pools' points outside the 50-point context (zoo.methods.nap_diagnostics.context_curves)")
        self.record["seconds"] = round(self.record.get("seconds_before", 0.0) + time.perf_counter() - self.start, 1)
        save_nap(module, self.out_dir / f"nap-sl-{self.family}.safetensors")
        atomic_write_text(self.out_dir / "curve.json", json.dumps(self.record, indent=1))
        print(f"[curve] {point}", flush=True)

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.record["seconds_before"] = self.record.get("seconds", 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="gp-prior-d4")
    ap.add_argument("--out-dir", default=None, help="default runs/nap-pretrain-<family>")
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock limit of the whole run (required)")
    ap.add_argument("--quick", action="store_true",
                    help="two steps of one epoch, two curve tasks, into a temporary directory: proves the pipeline")
    ap.add_argument("--resume", action="store_true", help="continue from <out-dir>/last.ckpt")
    ap.add_argument("--curve-tasks", type=int, default=16, help="validation functions of the learning curve")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--network-init", choices=["official", "torch"], default=None,
                    help="override the config's network init (zoo.methods.nap.NAPNetwork(init=...)): the ablation that "
                         "shows why the GP-prior configs use PyTorch's initialisation")
    args = ap.parse_args()
    if args.quick:
        import tempfile

        args.max_minutes = args.max_minutes or 5.0
        args.out_dir = args.out_dir or tempfile.mkdtemp(prefix="nap-pretrain-quick-")
        args.curve_tasks = 2
    if args.max_minutes is None or args.max_minutes <= 0:
        raise SystemExit(f"--max-minutes must be given and > 0, got {args.max_minutes}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*(does not have many workers|LeafSpec|treespec).*")
    out_dir = Path(args.out_dir or ROOT / "runs" / f"nap-pretrain-{args.family}")
    last = out_dir / "last.ckpt"
    if args.resume and not last.is_file():
        raise SystemExit(f"--resume: no {last} (run a first chunk without --resume)")
    if not args.resume and (out_dir / "curve.json").is_file():
        raise SystemExit(f"{out_dir} already holds a run; pass --resume or another --out-dir")
    out_dir.mkdir(parents=True, exist_ok=True)

    cfg = load_config(f"{args.family}-likelihood")
    if args.quick:
        cfg["data"]["init_args"]["train_tasks"] = 2 * cfg["data"]["init_args"]["tasks_per_batch"]
        cfg["trainer"]["max_epochs"] = 1
    pl.seed_everything(int(cfg.get("seed_everything", 0)), verbose=False)
    dm = build_data(cfg)
    model_args = stage_args(cfg, args.budget, None)
    if args.network_init:
        net = model_args["network"]
        model_args["network"] = {**net, "init_args": {**net["init_args"], "init": args.network_init}}
    model = instantiate_module(pl.LightningModule, {"_class_path": cfg["model"]["class_path"], **model_args})
    tasks = build_data(cfg, val_tasks=args.curve_tasks, val_seeds=1).fixed_tasks("val")
    # the first chunk's command line is what reproduces the run (a resumed chunk only extends its time limit)
    command = "python benchmarks/nap_pretrain.py " + " ".join(a for a in sys.argv[1:] if a != "--resume")
    from lightning.pytorch.loggers import CSVLogger

    m, s = divmod(int(args.max_minutes * 60), 60)
    trainer = pl.Trainer(max_epochs=int(cfg["trainer"]["max_epochs"]), accelerator="cpu", devices=1,
                         logger=CSVLogger(str(out_dir), name="logs"), log_every_n_steps=10,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, max_time=f"00:{m // 60:02d}:{m % 60:02d}:{s:02d}",
                         callbacks=[ContextCurve(tasks, out_dir, args.family, command),
                                    ModelCheckpoint(dirpath=str(out_dir), save_last=True, save_top_k=0)])
    trainer.fit(model, dm, ckpt_path=str(last) if args.resume else None)
    record = json.loads((out_dir / "curve.json").read_text())
    from lightning.pytorch.callbacks import Timer

    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    record["stopped_by"] = ("max_time" if (timer.time_remaining() or 0) <= 0 else "max_epochs"
                            if model.iterations_done < cfg["model"]["init_args"]["scheduler"]["init_args"]
                            ["total_steps"] else "schedule")
    record["iterations"] = model.iterations_done
    atomic_write_text(out_dir / "curve.json", json.dumps(record, indent=1))
    print(json.dumps(record["points"][-1]), record["stopped_by"], flush=True)


if __name__ == "__main__":
    main()
