"""Render the README's result tables from benchmarks/results/*.json (never by hand).

    python benchmarks/report.py          # rewrites the blocks between <!-- results:NAME --> ... <!-- /results:NAME -->

Each block names the command that produced its figures and the machine they were measured on. A results file that
does not exist yet leaves its block saying so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def pct(x: float, ci: float | None = None) -> str:
    return f"{100 * x:.2f}" + ("" if ci is None else f" ± {100 * ci:.2f}")


def footer(data: dict) -> str:
    m = data.get("machine", {})
    load = f", load average {m['load_average_1m']} when it finished" if "load_average_1m" in m else ""
    return (f"\n\nProduced by `{data['command']}` (commit {m.get('git', '?')}, {m.get('cores', '?')} CPU cores"
            f"{load}, torch {m.get('torch', '?')}); raw figures in `benchmarks/results/`.")


def protonet_glyphs(data: dict) -> str:
    lines = ["| ProtoNet Conv-4 on Glyphs | test accuracy, % (95% CI) | test episodes | training time |",
             "|---|---|---|---|"]
    for row in data["settings"].values():
        lines.append(f"| {row['setting']} | {pct(row['test_acc'], row['test_ci95'])} | {row['test_episodes']} | "
                     f"{row['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + footer(data)


def throughput(data: dict) -> str:
    s, lp = data["sampler"], data["lightning_vs_plain"]
    return "\n".join([
        "| measurement | result | target |", "|---|---|---|",
        f"| sampler + collate, {s['setting']} | {s['episodes_per_s']:,.0f} episodes/s | ≥ {s['target']:,} |",
        f"| plain PyTorch loop, {lp['setting']} | {lp['median_plain']:.2f} episodes/s | |",
        f"| `zoo fit` (Lightning, shipped callbacks), same model and episodes | {lp['median_zoo_fit']:.2f} episodes/s | |",
        f"| ratio `zoo fit` / plain | {lp['ratio']:.3f} | ≥ {lp['target_ratio']} |"]) + footer(data)


def susana_glyphs(data: dict) -> str:
    out = []
    for key, rows in data["settings"].items():
        out += [f"**Glyphs 5-way {key[3]}-shot**, {len(data['seeds'])} seeds, same fixed test episodes:", "",
                "| loss | accuracy, % (95% CI) | difference to CE, points (paired 95% CI) | step time vs CE |",
                "|---|---|---|---|"]
        for row in rows.values():
            out.append(f"| {row['name']} | {pct(row['test_acc'], row['test_ci95'])} | "
                       f"{100 * row['diff_vs_ce']:+.2f} ± {100 * row['diff_ci95']:.2f} | "
                       f"{100 * row['step_overhead_vs_ce']:+.1f}% |")
        out.append("")
    return "\n".join(out).rstrip() + footer(data)


RENDERERS: dict[str, Callable[[dict], str]] = {
    "protonet_glyphs": protonet_glyphs, "throughput": throughput, "susana_glyphs": susana_glyphs,
}


def render(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return f"*Not measured yet: run the benchmark named above to produce `benchmarks/results/{name}.json`.*"
    data = json.loads(path.read_text())
    renderer = RENDERERS.get(name)
    if renderer is None:  # a system's own benchmark may ship its table as markdown in its results file
        return data.get("markdown", "") + footer(data)
    return renderer(data)


def main() -> None:
    text = README.read_text()

    def fill(match: re.Match) -> str:
        name = match.group(1)
        return f"<!-- results:{name} -->\n{render(name)}\n<!-- /results:{name} -->"

    new = re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", fill, text, flags=re.S)
    README.write_text(new)
    print(f"updated {README}")


if __name__ == "__main__":
    sys.exit(main())
