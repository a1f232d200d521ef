"""MAML and ANIL against ProtoNet on the same 1,000 fixed Glyphs test episodes (5-way 1-shot and 5-shot).

    python benchmarks/maml_glyphs.py                   # both settings: trains MAML and ANIL under the CPU budget
                                                       # below, re-tests the registry's ProtoNet checkpoints on the
                                                       # same episodes, writes benchmarks/results/maml_glyphs.json
                                                       # and registers {maml,anil}-conv4-glyphs-5w{1,5}s
    python benchmarks/maml_glyphs.py --settings 5w1s   # one setting; the results file keeps the other's figures
    python benchmarks/maml_glyphs.py --quick           # a tiny smoke run into a temp dir, registers nothing
    python benchmarks/maml_glyphs.py --test-episodes 300   # the first 300 of the same fixed test episodes
                                                       # (episodes are keyed by index), for a loaded machine

CPU budget [INTERP]: the paper trains 60,000 meta-steps of 32 tasks on a GPU; here every training gets the same
wall-clock budget (``BUDGET``: ``max_time``, meta-batch of 8 tasks, 100 validation episodes per epoch for the
best-on-validation checkpoint), the paper's other hyper-parameters (configs/maml, configs/anil) unchanged. Test
episodes are the configs' 1,000 (seed 0), the same ones ProtoNet's shipped checkpoints were measured on; every
difference is paired over them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from common import (CSV_LOGGER, RESULTS, ROOT, claim, export_and_register, fit_and_test, validation_curve,
                    write_results)
from zoo.training.metrics import mean_ci95

SETTINGS = {"5w1s": ("glyphs.yaml", "5-way 1-shot 15-query"), "5w5s": ("glyphs-5shot.yaml", "5-way 5-shot 15-query")}
SYSTEMS = ("maml", "anil")
BUDGET = ["--trainer.max_time=00:00:05:00", "--trainer.max_epochs=1000", "--data.episodes_per_batch=8",
          "--data.train_episodes=160", "--data.val_episodes=100"]
QUICK = ["--trainer.max_epochs=1", "--data.episodes_per_batch=2", "--data.train_episodes=4",
         "--data.val_episodes=10", "--data.test_episodes=20"]


def retest_protonet(name: str, save_dir: str, overrides: list[str]) -> dict:
    """The registry's ProtoNet checkpoint on its own config's fixed test episodes, with per-episode accuracies."""
    from zoo.cli.lightning_cli import build_cli
    from zoo.hub.pretrained import load_pretrained_weights

    cli = build_cli(["test", "--pretrained", name, "--config", CSV_LOGGER, f"--trainer.logger.init_args.save_dir={save_dir}",
                     "--trainer.enable_progress_bar=false", *[o for o in overrides if o.startswith("--data.test")]],
                    run=False)
    load_pretrained_weights(cli.model, name)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    records = cli.model.records["test"]
    return {"episodes": [r["episode"] for r in records], "per_episode": [r["acc"] for r in records]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny runs, nothing exported or written")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--test-episodes", type=int, default=None, help="test on the first N fixed episodes only")
    parser.add_argument("--max-time", default=None, help="training budget per run, DD:HH:MM:SS (default in BUDGET)")
    args = parser.parse_args(argv)
    budget = [o for o in BUDGET if not (args.max_time and o.startswith("--trainer.max_time"))]
    budget += [f"--trainer.max_time={args.max_time}"] if args.max_time else []
    budget += [f"--data.test_episodes={args.test_episodes}"] if args.test_episodes else []
    command = " ".join(["python benchmarks/maml_glyphs.py", *(argv if argv is not None else sys.argv[1:])])
    overrides = QUICK if args.quick else budget
    settings, claims = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.settings:
            config_name, setting = SETTINGS[key]
            proto = retest_protonet(f"protonet-conv4-glyphs-{key}", tmp, overrides)
            acc, ci = mean_ci95(proto["per_episode"])
            rows = {"protonet": {"test_acc": acc, "test_ci95": ci, "test_episodes": len(proto["episodes"]),
                                 "source": f"registry protonet-conv4-glyphs-{key}, re-tested in this run"}}
            for system in SYSTEMS:
                config = f"configs/{system}/{config_name}"
                result = fit_and_test(str(ROOT / config), overrides, tmp)
                episodes = [r["episode"] for r in result["cli"].model.records["test"]]
                if episodes != proto["episodes"]:
                    raise RuntimeError(f"{system} {key}: test episodes differ from ProtoNet's; the pairing is void")
                c = claim(f"{system}-vs-protonet-glyphs-{key}",
                          f"{system.upper()} is more accurate than ProtoNet on Glyphs {setting}",
                          result["per_episode"], proto["per_episode"], seeds=1, trained=True)
                claims.append(c)
                diff, diff_ci = c["diff"], c["ci95"]
                rows[system] = {k: v for k, v in result.items() if k not in ("cli", "per_episode")}
                rows[system].update(config=config, diff_vs_protonet=diff, diff_ci95=diff_ci,
                                    val_curve=validation_curve(result["cli"].trainer.logger.log_dir))
                print(f"{system.upper()} Glyphs {setting}: {100 * result['test_acc']:.2f} +- "
                      f"{100 * result['test_ci95']:.2f} % (ProtoNet {100 * acc:.2f}); paired difference "
                      f"{100 * diff:+.2f} +- {100 * diff_ci:.2f} points; trained {result['train_seconds'] / 60:.1f} min"
                      f" ({result['epochs']} epochs)", flush=True)
                if not args.quick:
                    export_and_register(f"{system}-conv4-glyphs-{key}", result, system=system, config=config,
                                        setting=f"Glyphs {setting}", command=command, overrides=budget,
                                        notes="CPU budget, not the paper's 60,000 meta-steps: see the command's "
                                              "docstring")
            settings[key] = {"setting": setting, "methods": rows}
    if args.quick:
        return
    previous = RESULTS / "maml_glyphs.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        settings = {**old["settings"], **settings}
        claims += [c for c in old["claims"] if c["id"].rsplit("-", 1)[1] not in args.settings]
    print(f"wrote {write_results('maml_glyphs', {'command': command, 'budget_overrides': budget, 'settings': settings, 'claims': claims})}")


if __name__ == "__main__":
    sys.exit(main())
