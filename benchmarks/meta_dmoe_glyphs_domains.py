"""Meta-DMoE against its baselines on the 36 held-out target domains of Glyphs-Domains, all in one run.

    python benchmarks/meta_dmoe_glyphs_domains.py            # 3 seeds at the budget below; writes
                                                             # benchmarks/results/meta_dmoe_glyphs_domains.json and
                                                             # registers meta-dmoe-conv4-glyphs-domains (seed 0)
    python benchmarks/meta_dmoe_glyphs_domains.py --seeds 0  # fewer seeds on a loaded machine
    python benchmarks/meta_dmoe_glyphs_domains.py --quick    # a tiny smoke run into a temp dir, registers nothing

Per seed (``seed_everything``, the training batches and the random super-domain partition all follow it):

1. one ``zoo fit`` of ``configs/meta_dmoe/glyphs-domains.yaml``: stages A (4 experts), B (aggregator pre-training),
   C (student ERM), D (meta-distillation), writing ``stage-{A,B,C,D}.ckpt``;
2. two more stage-D runs resumed from the same ``stage-C.ckpt`` (so they share experts, aggregator pre-training
   and student initialisation with the full method): without the mask, and with the aggregator replaced by mean
   pooling of the expert features;
3. tests, every method on the same 36 target domains with the section 1.7 protocol (first batch of 24 unlabelled
   images adapts, every image of the domain is scored): Meta-DMoE, no mask and mean pooling from their stage-D
   weights; ERM, ERM + test-time BN statistics (of the same first batch), the experts' averaged softmax and the
   aggregator's own head from stage C's weights; ERM again on held-out images of its 48 *training* domains (the
   in-domain reference for the domain-shift drop).

Budget [INTERP]: the official schedules are tens of GPU epochs of ResNet-50; here ``BUDGET`` (stage epochs x
batches per epoch, no validation: every stage keeps its last weights) fits three seeds into the 14 CPU minutes this
benchmark is given. Claims pair methods over the target domains, on the seed-averaged per-domain accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from common import CSV_LOGGER, ROOT, claim, write_results
from zoo.cli.lightning_cli import build_cli
from zoo.training.metrics import mean_ci95

CONFIG = "configs/meta_dmoe/glyphs-domains.yaml"
REGISTRY_NAME = "meta-dmoe-conv4-glyphs-domains"
BUDGET = ["--model.stage_epochs=[2,1,2,2]", "--trainer.max_epochs=7", "--data.train_batches=32",
          "--trainer.limit_val_batches=0"]
QUICK = ["--model.stage_epochs=[1,1,1,1]", "--trainer.max_epochs=4", "--data.train_batches=2",
         "--trainer.limit_val_batches=0"]
#: method -> (which weights it is tested from, the eval method of zoo.methods.meta_dmoe that scores it)
METHODS = {"meta_dmoe": ("full", "meta_dmoe"), "no_mask": ("no_mask", "meta_dmoe"),
           "mean_pool": ("mean_pool", "meta_dmoe"), "erm": ("stage_c", "erm"), "erm_bn": ("stage_c", "erm_bn"),
           "experts_avg": ("stage_c", "experts_avg"), "aggregator_head": ("stage_c", "aggregator_head"),
           "meta_student_unadapted": ("full", "erm")}
VARIANTS = {"no_mask": ["--model.mask=none"], "mean_pool": ["--model.aggregator=mean_tokens"]}
LABELS = {"meta_dmoe": "Meta-DMoE", "no_mask": "Meta-DMoE without the mask",
          "mean_pool": "Meta-DMoE with a mean-pooling aggregator", "erm": "ERM (the stage-C student)",
          "erm_bn": "ERM + test-time BN statistics", "experts_avg": "averaging the experts",
          "aggregator_head": "the pre-trained aggregator's own classifier",
          "meta_student_unadapted": "the meta-trained student without adaptation"}


def fit(overrides: list[str], save_dir: str, ckpt_path: str | None = None):
    """A fit through the real CLI in this process; the CLI (model, datamodule, trainer) and its wall time."""
    cli = build_cli(["fit", "--config", str(ROOT / CONFIG), "--config", CSV_LOGGER,
                     f"--trainer.logger.init_args.save_dir={save_dir}", "--trainer.enable_progress_bar=false",
                     "--test_after_fit=false", *overrides], run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    return cli, time.perf_counter() - start


def test(model, datamodule, methods: list[str]) -> list[dict]:
    """Per-domain results of ``methods`` on the datamodule's test split (a fresh Trainer, no logging): one row per
    domain, in domain order (``zoo.MetaDMoE.summarise_items``)."""
    model.eval_methods = methods
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return model.records["test"]


def stage_checkpoint(cli, stage: str) -> Path:
    return Path(cli.trainer.log_dir) / "stages" / f"stage-{stage}.ckpt"


def run_seed(seed: int, budget: list[str], tmp: str) -> dict:
    """Everything of one seed (module docstring): per-domain accuracies per method, times, the full CLI."""
    from zoo.methods.meta_dmoe import MetaDMoE

    seeded = [*budget, f"--seed_everything={seed}", f"--data.seed={seed}"]
    full, full_seconds = fit(seeded, tmp)
    stage_c = stage_checkpoint(full, "C")
    runs, seconds = {"full": full}, {"full": full_seconds}
    for name, extra in VARIANTS.items():
        runs[name], seconds[name] = fit([*seeded, *extra], tmp, ckpt_path=str(stage_c))
    weights = {name: cli.model for name, cli in runs.items()}
    weights["stage_c"] = MetaDMoE.load_from_checkpoint(stage_c, weights_only=True)
    dm = full.datamodule
    per_domain, records = {}, {}
    for source in ("full", "no_mask", "mean_pool", "stage_c"):
        methods = [m for m, (s, _) in METHODS.items() if s == source]
        rows = test(weights[source], dm, sorted({METHODS[m][1] for m in methods}))
        records[source] = rows
        for m in methods:
            key = "acc" if rows[0]["method"] == METHODS[m][1] else f"acc_{METHODS[m][1]}"
            per_domain[m] = [r[key] for r in rows]
    in_domain_dm = type(dm)(**{**{k: v for k, v in dm.hparams.items() if not k.startswith("_")},
                               "test_split": "in_domain"})
    in_domain = [r["acc"] for r in test(weights["stage_c"], in_domain_dm, ["erm"])]
    return {"per_domain": per_domain, "in_domain_erm": in_domain, "train_seconds": seconds,
            "adapt_seconds": {"meta_dmoe": [r["adapt_seconds"] for r in records["full"]]},
            "domain_id": [r["domain_id"] for r in records["full"]], "cli": full, "experts_of": dm.experts_of()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny runs, nothing exported or written")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-record", action="store_true",
                        help="the full budget, but results go to *_quick.json and nothing is registered (tuning)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on 2 shared cores two threads per process measured far slower)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/meta_dmoe_glyphs_domains.py", *(argv if argv is not None else sys.argv[1:])])
    budget = QUICK if args.quick else BUDGET
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = {s: run_seed(s, budget, tmp) for s in args.seeds}
        first = seeds[args.seeds[0]]
        dm = first["cli"].datamodule
        names = [dm.data.domain_names[int(d)] for d in first["domain_id"]]
        avg = {m: [statistics.fmean(seeds[s]["per_domain"][m][i] for s in args.seeds) for i in range(len(names))]
               for m in METHODS}
        rows = {}
        for m, v in avg.items():
            mean, ci = mean_ci95(v)
            rows[m] = {"label": LABELS[m], "acc": mean, "ci95": ci, "worst_acc": min(v),
                       "worst_domain": names[v.index(min(v))],
                       "per_seed_acc": [statistics.fmean(seeds[s]["per_domain"][m]) for s in args.seeds]}
        in_dom = [statistics.fmean(seeds[s]["in_domain_erm"]) for s in args.seeds]
        adapt = [t for s in args.seeds for t in seeds[s]["adapt_seconds"]["meta_dmoe"]]
        claims = [claim("meta-dmoe-vs-erm-glyphs-domains", "Meta-DMoE is more accurate than ERM on Glyphs-Domains' "
                        "held-out target domains", avg["meta_dmoe"], avg["erm"], seeds=len(args.seeds), trained=True),
                  claim("meta-dmoe-vs-no-mask-glyphs-domains", "masking the in-domain expert in meta-training makes "
                        "Meta-DMoE more accurate on Glyphs-Domains' target domains", avg["meta_dmoe"], avg["no_mask"],
                        seeds=len(args.seeds), trained=True)]
        for other in ("erm_bn", "experts_avg", "mean_pool", "meta_student_unadapted"):
            claims.append(claim(f"meta-dmoe-vs-{other.replace('_', '-')}-glyphs-domains",
                                f"Meta-DMoE is more accurate than {LABELS[other]} on Glyphs-Domains' target domains",
                                avg["meta_dmoe"], avg[other], seeds=len(args.seeds), trained=True))
        for c in claims:
            print(f"{c['id']}: {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points (n={c['n']}) "
                  f"holds={c['holds']}", flush=True)
        for m, r in rows.items():
            print(f"{r['label']}: {100 * r['acc']:.2f} +- {100 * r['ci95']:.2f} % (worst {100 * r['worst_acc']:.1f} "
                  f"{r['worst_domain']})", flush=True)
        erm_in = mean_ci95(in_dom)
        print(f"ERM in-domain {100 * statistics.fmean(in_dom):.2f} % vs held-out {100 * rows['erm']['acc']:.2f} %")
        payload = {
            "command": command, "budget_overrides": budget, "config": CONFIG, "seeds": args.seeds,
            "torch_threads": args.threads, "splits": dm.summary(), "target_domains": names,
            "methods": rows, "per_domain_seed_avg": avg,
            "erm_in_domain": {"acc": erm_in[0], "ci95_over_seeds": erm_in[1], "per_seed": in_dom,
                              "held_out_acc": rows["erm"]["acc"],
                              "drop": statistics.fmean(in_dom) - rows["erm"]["acc"]},
            "adaptation": {"steps": 1, "support_size": dm.eval_batch_size,
                           "seconds_per_domain_mean": statistics.fmean(adapt),
                           "seconds_per_domain_median": statistics.median(adapt), "domains_timed": len(adapt)},
            "train_seconds": {str(s): seeds[s]["train_seconds"] for s in args.seeds},
            "total_minutes": (time.perf_counter() - start) / 60,
            "experts_of_seed": {str(s): seeds[s]["experts_of"] for s in args.seeds},
            "claims": claims}
        print(f"total {payload['total_minutes']:.1f} min", flush=True)
        if args.quick or args.no_record:
            write_results("meta_dmoe_glyphs_domains_quick", payload)
            return
        register_seed(first, rows, budget, command, in_dom)
        print(f"wrote {write_results('meta_dmoe_glyphs_domains', payload)}")


def register_seed(result: dict, rows: dict, budget: list[str], command: str, in_dom: list[float]) -> None:
    """Export the first seed's full Meta-DMoE (stage D) and record it in the registry."""
    from zoo.hub.pretrained import Entry, export_weights, register

    cli = result["cli"]
    path = ROOT / "checkpoints" / f"{REGISTRY_NAME}.safetensors"
    sha = export_weights(cli.model, path)
    hp = dict(cli.model.hparams)
    model = {"class_path": hp.pop("_class_path"), "init_args": {k: v for k, v in hp.items() if not k.startswith("_")}}
    accs = result["per_domain"]["meta_dmoe"]
    mean, ci = mean_ci95(accs)
    register(Entry(name=REGISTRY_NAME, system="meta_dmoe", weights=str(path.relative_to(ROOT)), sha256=sha,
                   model=model, config=CONFIG, setting="Glyphs-Domains, 36 held-out target domains, one adaptation "
                   "step on the first 24 unlabelled images of each",
                   metrics={"test_acc": round(mean, 4), "test_ci95": round(ci, 4), "test_domains": len(accs),
                            "worst_domain_acc": round(min(accs), 4),
                            "train_seconds": round(result["train_seconds"]["full"], 1)},
                   command=command, overrides=list(budget),
                   notes="seed 0 of the benchmark; CPU budget, not the official schedules (see the command's "
                         "docstring)"))


if __name__ == "__main__":
    sys.exit(main())
