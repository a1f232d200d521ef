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


def budget(overrides: list[str]) -> str:
    return ", ".join(f"`{o}`" for o in overrides) if overrides else "the configs' own"


def susana_glyphs(data: dict) -> str:
    out = [f"Budget of every run: {budget(data.get('budget_overrides', []))}; Conv-4; seeds "
           f"{', '.join(map(str, data['seeds']))} (initialisation and training episodes). The interval of a setting is "
           "over the 1,000 test episodes of the seed-averaged accuracy.", ""]
    for key, rows in data["settings"].items():
        out += [f"**Glyphs 5-way {key[2]}-shot**, {len(data['seeds'])} seeds, same fixed test episodes:", "",
                "| loss | accuracy, % (95% CI) | difference to CE, points (paired 95% CI) | step time vs CE |",
                "|---|---|---|---|"]
        for row in rows.values():
            out.append(f"| {row['name']} | {pct(row['test_acc'], row['test_ci95'])} | "
                       f"{100 * row['diff_vs_ce']:+.2f} ± {100 * row['diff_ci95']:.2f} | "
                       f"{100 * row['step_overhead_vs_ce']:+.1f}% |")
        out.append("")
    return "\n".join(out).rstrip() + footer(data)


def raml_wordnet(data: dict) -> str:
    st = data["setting"]
    ep = st["episodes"]
    out = [f"Budget: {st['epochs']} epochs of {ep['train']} training episodes, {ep['val']} validation episodes per "
           f"epoch (best-on-validation checkpoint), {ep['test']} fixed test episodes (5-way, {st['q_query']} queries); "
           f"seeds {', '.join(map(str, st['seeds']))}; encoder {st['encoder']}; RAML: {st['raml']}. Accuracy: mean "
           "over seeds, 95% CI over the test episodes of the seed-averaged accuracy. Majority share: the share of an "
           "episode's queries put into its most frequent predicted class (0.2 is balanced; above 0.4 the head is "
           "collapsed).", "",
           "| setting | method | accuracy, % (95% CI) | per-seed means, % | majority share | learned (per seed) |",
           "|---|---|---|---|---|---|"]
    for key, e in data["summary"].items():
        if " - " in key:  # paired differences, below
            continue
        setting, method = key.split("/", 1)
        learned = "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vs) for k, vs in e.get("learned", {}).items())
        share = (f"{e['majority_share']:.3f}{' (collapsed)' if e.get('collapsed') else ''}"
                 if "majority_share" in e else "not recorded")
        out.append(f"| {setting} | {method} | {pct(e['mean'], e['ci95_over_episodes'])} | "
                   + ", ".join(f"{100 * v:.1f}" for v in e["seed_means"]) + f" | {share} | {learned} |")
    diffs = [(k, e) for k, e in data["summary"].items() if " - " in k]  # files written before claims existed
    if diffs:
        out += ["", "Paired differences, points (95% CI): " + "; ".join(
            f"{k.replace(' - ', ' minus ')} {100 * e['mean']:+.2f} ± {100 * e['ci95']:.2f}" for k, e in diffs) + "."]
    return "\n".join(out) + claims_line(data) + footer(data)


def faiss_bench(data: dict) -> str:
    st = data["setting"]
    out = [f"{st['passages']:,} passages ({st['corpus']}), {st['queries']:,} queries, {st['dim']}-d {st['encoder']}, "
           f"{st['metric']}, FAISS on {st['faiss_threads']} thread(s). Recall@{st['k']} is against exact search.", "",
           f"| index | parameters | build, s | queries/s (batch) | queries/s (one at a time) | recall@{st['k']} |",
           "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        out.append(f"| {r['kind']} | {r['params']} | {r['build_s']:.1f} | {r['qps_batch']:,.0f} | "
                   f"{r['qps_single']:,.0f} | {r['recall_at_10']:.4f} |")
    return "\n".join(out) + footer(data)


NAP_NAMES = {"nap": "NAP", "nap-ei": "likelihood head only (EI)", "gp-ei": "GP-EI (BoTorch)", "random": "random search"}


def nap(data: dict) -> str:
    st = data["settings"]
    trials = st["report_trials"]
    out = [f"Pools of {st.get('eval_num_candidates', '?')} candidates, {st['n_init']} initial points then {st['budget']} "
           f"trials; normalised regret (1 - best normalised value found), mean ± 95% CI over the runs (fixed test "
           f"functions × {st['seeds_per_function']} initial designs). Decision time: one task at a time, "
           f"{st.get('threads', '?')} torch thread(s). Commands: "
           + "; ".join(f"`{f['command']}`" for f in data["families"].values() if "command" in f) + ".", "",
           "| family | method | " + " | ".join(f"regret @{t}" for t in trials) + " | s / decision | training |",
           "|---|---|" + "---|" * len(trials) + "---|---|"]
    for fam, f in data["families"].items():
        for name, res in f["methods"].items():
            cells = [f"{res['at'][str(t)]['mean']:.4f} ± {res['at'][str(t)]['ci95']:.4f}" for t in trials]
            sec = f["decision_seconds"].get(name)
            kind = {"nap": "nap", "nap-ei": "nap-sl"}.get(name)
            train = f["training"].get(kind, {}) if kind else {}
            trained = (f"{train['iterations']} it., {train['seconds'] / 60:.1f} min"
                       if train.get("seconds") is not None else "")
            out.append(f"| {fam} ({res['runs']} runs) | {NAP_NAMES.get(name, name)} | " + " | ".join(cells)
                       + f" | {sec:.3f} | {trained} |")
    return "\n".join(out) + footer(data)


def maml_glyphs(data: dict) -> str:
    out = [f"Budget of every MAML/ANIL training: {budget(data.get('budget_overrides', []))} on top of its config "
           "(best-on-validation checkpoint); ProtoNet is the registry's checkpoint re-tested in the same run. All "
           "methods are tested on the same fixed episodes; differences are paired over them.", "",
           "| setting | method | accuracy, % (95% CI) | vs ProtoNet, points (paired 95% CI) | training |",
           "|---|---|---|---|---|"]
    for row in data["settings"].values():
        for method, r in row["methods"].items():
            diff = (f"{100 * r['diff_vs_protonet']:+.2f} ± {100 * r['diff_ci95']:.2f}"
                    if "diff_vs_protonet" in r else "")
            train = f"{r['train_seconds'] / 60:.1f} min, {r['epochs']} epochs" if "train_seconds" in r else "registry"
            out.append(f"| {row['setting']} | {method} | {pct(r['test_acc'], r['test_ci95'])} | {diff} | {train} |")
    return "\n".join(out) + claims_line(data) + footer(data)


def claims_line(data: dict) -> str:
    """The results file's claims, one clause each: id, paired difference +- 95% CI, n, and whether it holds."""
    claims = data.get("claims") or []
    if not claims:
        return ""
    return "\n\nClaims: " + "; ".join(
        f"`{c['id']}` ({c['diff']:+.3g} ± {c['ci95']:.2g}, n = {c['n']}): {'holds' if c['holds'] else 'does not hold'}"
        for c in claims) + "."


def batched_episodes(data: dict) -> str:
    out = [f"Training steps (loss, backward, Adam) on {data.get('device', 'cpu')}, episodes drawn beforehand; "
           "median of the repeats, speed-up over one episode per step.", "",
           "| system | setting | episodes per step B | episodes/s | speed-up vs B = 1 |", "|---|---|---|---|---|"]
    for name, r in data["systems"].items():
        for b, rate in r["median_episodes_per_s"].items():
            out.append(f"| {name} | {r['setting']} | {b} | {rate:.2f} | {r['speedup_vs_b1'][b]:.2f}× |")
    return "\n".join(out) + claims_line(data) + footer(data)


RENDERERS: dict[str, Callable[[dict], str]] = {
    "maml_glyphs": maml_glyphs, "batched_episodes": batched_episodes,
    "protonet_glyphs": protonet_glyphs, "throughput": throughput, "susana_glyphs": susana_glyphs,
    "raml_wordnet": raml_wordnet, "faiss_bench": faiss_bench, "nap": nap,
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
