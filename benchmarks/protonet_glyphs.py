"""ProtoNet Conv-4 on Glyphs, 5-way 1-shot and 5-shot: train, test on 1,000 fixed episodes, ship the checkpoints.

    python benchmarks/protonet_glyphs.py            # both settings; writes benchmarks/results/protonet_glyphs.json,
                                                    # checkpoints/protonet-conv4-glyphs-5w{1,5}s.safetensors and
                                                    # their registry entries
    python benchmarks/protonet_glyphs.py --settings 5w5s   # one setting; the other keeps its recorded figures
    python benchmarks/protonet_glyphs.py --from-registry   # re-test the shipped checkpoints, no training
    python benchmarks/protonet_glyphs.py --quick    # a 2-epoch smoke run into a temp dir, registers nothing

Claim: 5-shot is more accurate than 1-shot, paired over the 1,000 fixed test episodes. The pairing is by episode
index: both settings draw test episodes with data seed 0 and 5 classes, so episode i holds the same classes in both
(``datamodules.episodes.EpisodeDataset.draw`` draws the classes, then each class's item order, before it splits
support from query; the 5-shot support contains the 1-shot support item). Each setting's per-episode accuracies
are kept in the results file, so a rerun of one setting still pairs with the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from common import RESULTS, ROOT, claim, export_and_register, fit_and_test, write_results

SETTINGS = {
    "5w1s": ("configs/protonet/glyphs.yaml", "5-way 1-shot 15-query (30-way 5-query training episodes)"),
    "5w5s": ("configs/protonet/glyphs-5shot.yaml", "5-way 5-shot 15-query (20-way 5-query training episodes)"),
}
COMMAND = "python benchmarks/protonet_glyphs.py"


def retest_registered(name: str, save_dir: str) -> dict:
    """Test a registry checkpoint in its recorded config; the figures a training run would have written."""
    from common import CSV_LOGGER
    from zoo.cli.lightning_cli import build_cli
    from zoo.hub.pretrained import load_pretrained_weights, registry_entry

    entry = registry_entry(name)
    cli = build_cli(["test", "--pretrained", name, "--config", CSV_LOGGER, f"--trainer.logger.init_args.save_dir={save_dir}",
                     "--trainer.enable_progress_bar=false"], run=False)
    load_pretrained_weights(cli.model, name)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    m = cli.trainer.callback_metrics
    return {"train_seconds": entry.metrics["train_seconds"], "best_val_acc": entry.metrics["best_val_acc"],
            "test_acc": float(m["test/acc"]), "test_ci95": float(m["test/acc_ci95"]),
            "test_episodes": int(m["test/episodes"]), "retested_from_registry": True,
            "per_episode": [r["acc"] for r in cli.model.records["test"]]}


def shot_claim(settings: dict) -> list[dict]:
    """``protonet-5w5s-vs-5w1s-glyphs`` from the two settings' per-episode accuracies (empty if one is missing)."""
    one, five = (settings.get(k, {}).get("per_episode") for k in ("5w1s", "5w5s"))
    if not one or not five or len(one) != len(five):
        return []
    return [claim("protonet-5w5s-vs-5w1s-glyphs", "ProtoNet Conv-4 is more accurate with 5 shots than with 1 on "
                  "Glyphs 5-way (paired over the fixed test episodes: the same classes per episode)", five, one,
                  seeds=1, trained=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 short epochs, no export (checks the script works)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="run only these; the results file keeps the other settings' previous figures")
    parser.add_argument("--from-registry", action="store_true",
                        help="do not train: re-test the registered checkpoints on their fixed test episodes "
                             "(training time is the one recorded when they were trained)")
    args = parser.parse_args(argv)
    overrides = ["--trainer.max_epochs=2", "--data.train_episodes=20", "--data.val_episodes=50",
                 "--data.test_episodes=100"] if args.quick else []
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.settings:
            config, setting = SETTINGS[key]
            if args.from_registry:
                rows[key] = {**retest_registered(f"protonet-conv4-glyphs-{key}", tmp), "config": config,
                             "setting": setting}
                continue
            result = fit_and_test(str(ROOT / config), overrides, tmp)
            rows[key] = {k: v for k, v in result.items() if k != "cli"}
            rows[key].update(config=config, setting=setting)
            print(f"ProtoNet Conv-4 Glyphs {setting}: {100 * result['test_acc']:.2f} +- "
                  f"{100 * result['test_ci95']:.2f} % over {result['test_episodes']} episodes; "
                  f"trained {result['train_seconds'] / 60:.1f} min", flush=True)
            if not args.quick:
                export_and_register(f"protonet-conv4-glyphs-{key}", result, system="protonet", config=config,
                                    setting=f"Glyphs {setting}", command=COMMAND)
    if not args.quick:
        previous = RESULTS / "protonet_glyphs.json"
        if previous.is_file():
            rows = {**json.loads(previous.read_text())["settings"], **rows}
        for row in rows.values():
            if "per_episode" in row:  # figures from before per-episode accuracies were kept have none
                row["per_episode"] = [round(a, 4) for a in row["per_episode"]]
        path = write_results("protonet_glyphs", {"command": COMMAND, "settings": rows, "claims": shot_claim(rows)})
        print(f"wrote {path}")
    print("\n| setting | test accuracy (95% CI) | test episodes | training time |\n|---|---|---|---|")
    for c in shot_claim(rows):
        print(f"{c['id']}: {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points (n = {c['n']}), holds: {c['holds']}")
    for row in rows.values():
        print(f"| {row['setting']} | {100 * row['test_acc']:.2f} +- {100 * row['test_ci95']:.2f} % | "
              f"{row['test_episodes']} | {row['train_seconds'] / 60:.1f} min |")


if __name__ == "__main__":
    sys.exit(main())
