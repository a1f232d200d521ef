"""Regenerate every number the README quotes: every benchmark at the README's budget, then the README itself.

    python benchmarks/reproduce.py             # = make reproduce: hours on 2 CPU cores; rewrites results/ and README
    python benchmarks/reproduce.py --quick     # = make reproduce QUICK=1: every script's smoke version (*_quick.json,
                                               #   git-ignored); the README and the shipped results stay as they are
    python benchmarks/reproduce.py --dry-run   # print the commands only

``FULL`` is exactly the commands the results files record as having produced the README's figures (a test checks
that they agree), run in order; the first failure stops the run and names its command. The README is re-rendered
(``python benchmarks/report.py``) only after a full run, so a smoke run never puts smoke numbers into it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The README's budget: each results file's recorded ``command`` (NAP: one per family, as its README block says).
FULL = [
    "python benchmarks/protonet_glyphs.py",
    "python benchmarks/throughput.py",
    "python benchmarks/susana_glyphs.py",
    "python benchmarks/susana_glyphs.py --settings 20w1s 20w5s --losses ce prototriplet-icnn --epochs 2 "
    "--train-episodes 15 --val-episodes 20 --test-episodes 100 --threads 1 --timing-steps 0",
    "python benchmarks/raml_wordnet.py",
    "python benchmarks/raml_wordnet_knowledge.py --shots 1 --max-minutes 20",
    "python benchmarks/raml_passage_sweep.py",
    "python benchmarks/faiss_bench.py",
    "python benchmarks/passage_embedding.py",
    "python benchmarks/nap_regret.py --families hartmann3 --test-tasks 5 --threads 1",
    "python benchmarks/nap_pretrain.py --family gp-prior-d4 --max-minutes 22",
    "python benchmarks/nap_regret.py --families gp-prior-d4 --pretrained runs/nap-pretrain-gp-prior-d4 "
    "--train-seeds 3 --test-tasks 5 --threads 1",
    "python benchmarks/maml_glyphs.py --settings 5w1s --max-time 00:00:07:00",
    "python benchmarks/batched_episodes.py",
    "python benchmarks/demo_phases.py",
    "python benchmarks/gpam_wordnet_rel.py --export --max-minutes 21",
    "python benchmarks/gpam_fewrel_nyt_semeval.py --export --max-minutes 19",
    "python benchmarks/gpam_fewrel_nyt_semeval.py --export --methods gpam protonet-threshold-views protonet-threshold "
    "gpam-point gpam-fixed-margin --max-minutes 20 --resume",
    "python benchmarks/gpam_fewrel_nyt_semeval.py --resume --shots 1 --methods gpam",  # transfer row, re-registered
    "python benchmarks/meta_rtl_wordnet_qa.py --sizes 32 128 --max-minutes 22",
    "python benchmarks/meta_rtl_wordnet_qa.py --mislabelled synonym definition --max-minutes 20",
    "python benchmarks/meta_dmoe_glyphs_domains.py --seeds 0 1 2",
    "python benchmarks/omniglot_runs.py --methods protonet-ce protonet-glyphs-pretrain --zero-shot --max-minutes 23",
    "python benchmarks/omniglot_runs.py --methods protonet-glyphs-pretrain --seeds 3 4 --max-minutes 9 --no-register",
    "python benchmarks/omniglot_runs.py --methods protonet-pt-icnn --max-minutes 22",
    "python benchmarks/omniglot_runs.py --methods maml --max-minutes 23",
]
#: Each script's own smoke mode: tiny budgets, results to ``*_quick.json``, nothing registered.
QUICK = [
    "python benchmarks/protonet_glyphs.py --quick",
    "python benchmarks/throughput.py --quick",
    "python benchmarks/susana_glyphs.py --quick",
    "python benchmarks/raml_wordnet.py --quick",
    "python benchmarks/raml_wordnet_knowledge.py --quick",
    "python benchmarks/raml_passage_sweep.py --quick",
    "python benchmarks/faiss_bench.py --quick",
    "python benchmarks/passage_embedding.py --quick",
    "python benchmarks/nap_regret.py --quick",
    "python benchmarks/nap_pretrain.py --quick",
    "python benchmarks/maml_glyphs.py --quick",
    "python benchmarks/batched_episodes.py --quick",
    "python benchmarks/demo_phases.py --quick",
    "python benchmarks/gpam_wordnet_rel.py --quick",
    "python benchmarks/gpam_fewrel_nyt_semeval.py --quick",
    "python benchmarks/meta_rtl_wordnet_qa.py --quick",
    "python benchmarks/meta_dmoe_glyphs_domains.py --quick",
    "python benchmarks/omniglot_runs.py --quick",
]
RENDER = "python benchmarks/report.py"


def commands(quick: bool) -> list[str]:
    """The commands a run executes, in order: the benchmarks, then (full runs only) the README rendering."""
    return list(QUICK) if quick else [*FULL, RENDER]


def run_all(cmds: list[str], runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> int:
    """Run ``cmds`` from the repository root with this interpreter; stop at the first failure, naming it.

    The repository root goes first on ``PYTHONPATH``: a script in ``benchmarks/`` does not get the working directory
    on ``sys.path``, and without it an installed copy of ``zoo`` elsewhere would be measured instead of this one.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for i, cmd in enumerate(cmds, 1):
        argv = shlex.split(cmd)
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        print(f"[{i}/{len(cmds)}] {cmd}", flush=True)
        start = time.perf_counter()
        code = runner(argv, cwd=ROOT, env=env).returncode
        if code != 0:
            print(f"reproduce: `{cmd}` failed (exit {code}); the later commands did not run", file=sys.stderr)
            return code
        print(f"[{i}/{len(cmds)}] done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every benchmark's smoke version; README untouched")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    cmds = commands(args.quick)
    if args.dry_run:
        print("\n".join(cmds))
        return 0
    return run_all(cmds)


if __name__ == "__main__":
    sys.exit(main())
