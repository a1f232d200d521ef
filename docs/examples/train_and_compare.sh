#!/usr/bin/env bash
# Train two methods (ProtoNet and ANIL) on the embedded Glyphs benchmark with a tiny budget, test both on the same fixed episodes, and
# compare them paired over those episodes.
#
#     bash docs/examples/train_and_compare.sh [RUNS_DIR]
#
# The budget is a smoke run's (configs/trainer/debug.yaml: 5 training and 5 validation episodes or meta-batches),
# so the accuracies say nothing about the methods; the shipped configs without the overlay are the real budget.
# Both test on the same 50 fixed 5-way 1-shot episodes (same data seed and setting), which `zoo compare` verifies
# through the episode-set hash each run records before it pairs them. The first run builds Glyphs into
# $METAZOO_DATA (about a minute, once).
set -euo pipefail
RUNS=${1:-runs/example-compare}

TINY=(--config trainer/debug --config logger/csv --trainer.logger.init_args.save_dir "$RUNS"
      --data.test_episodes 50 --trainer.limit_test_batches null --trainer.enable_progress_bar false)
zoo fit --config protonet/glyphs "${TINY[@]}" --trainer.logger.init_args.name protonet
zoo fit --config anil/glyphs "${TINY[@]}" --trainer.logger.init_args.name anil --data.episodes_per_batch 4
# each run's directory is the one holding its test_episodes.json
PROTONET=$(dirname "$(find "$RUNS/protonet" -name test_episodes.json | sort | tail -n 1)")
ANIL=$(dirname "$(find "$RUNS/anil" -name test_episodes.json | sort | tail -n 1)")
zoo compare "$PROTONET" "$ANIL"
