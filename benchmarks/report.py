"""Render the result tables of the README and the documentation site from benchmarks/results/*.json (never by hand).

    python benchmarks/report.py          # rewrites every generated block in README.md and docs/**/*.md
    python benchmarks/report.py --check  # exit 1, naming the files, when a block is not what the files render

Two kinds of block, each between an opening and a closing comment:

* ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``: the table of ``benchmarks/results/NAME.json``. Each
  names the command that produced its figures and the machine they were measured on. A results file that does not
  exist yet leaves its block saying so.
* ``<!-- registry:SYSTEM -->`` ... ``<!-- /registry:SYSTEM -->``: the pretrained checkpoints of
  ``checkpoints/registry.yaml`` whose ``system`` is SYSTEM (``all``: every entry), with the figures each entry
  records and the command that produced them.
* ``<!-- configs:DIR -->`` ... ``<!-- /configs:DIR -->``: the shipped configs under ``configs/DIR/`` with the first
  sentence of each one's header comment, so the docs list exactly the configs that ship.

The README and the docs pages are filled by the same renderers in one pass, so a block of the same name reads the
same wherever it appears. The README is the front page: it carries the registry table (``registry:all``); every
results block lives on its system's docs page (``docs/systems/*.md``), with the prose that reads it.
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
DOCS = ROOT / "docs"
REGISTRY = ROOT / "checkpoints" / "registry.yaml"
CONFIGS = ROOT / "configs"
BLOCK = re.compile(r"<!-- (results|registry|configs):(\w+) -->.*?<!-- /\1:\2 -->", flags=re.S)


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
    return "\n".join(lines) + claims_line(data) + footer(data)


def throughput(data: dict) -> str:
    s, lp = data["sampler"], data["lightning_vs_plain"]
    return "\n".join([
        "| measurement | result | target |", "|---|---|---|",
        f"| sampler + collate, {s['setting']} | {s['episodes_per_s']:,.0f} episodes/s | ≥ {s['target']:,} |",
        f"| plain PyTorch loop, {lp['setting']} | {lp['median_plain']:.2f} episodes/s | |",
        f"| `zoo fit` (Lightning, shipped callbacks), same model and episodes | {lp['median_zoo_fit']:.2f} episodes/s | |",
        f"| ratio `zoo fit` / plain | {lp['ratio']:.3f} | ≥ {lp['target_ratio']} |"]) + claims_line(data) + footer(data)


def budget(overrides: list[str]) -> str:
    return ", ".join(f"`{o}`" for o in overrides) if overrides else "the configs' own"


def provenance(run: dict) -> str:
    """Which command, commit and load produced one part of a results file that merges several runs."""
    m = run.get("machine", {})
    load = f", load average {m['load_average_1m']}" if "load_average_1m" in m else ""
    return f"`{run['command']}` (commit {m.get('git', '?')}, {m.get('torch_threads', '?')} torch thread(s){load})"


def susana_glyphs(data: dict) -> str:
    out = ["Conv-4; the seeds vary the initialisation; each setting's interval is over its fixed test episodes of the "
           "seed-averaged accuracy.", ""]
    for key, rows in data["settings"].items():
        way, shot = key[:-1].split("w")
        run = data["runs"][key]
        n = next(iter(rows.values())).get("episodes", 1000)
        out += [f"**Glyphs {way}-way {shot}-shot** ({run['query']} queries per class), seeds "
                f"{', '.join(map(str, run['seeds']))}, the same {n:,} fixed test episodes; budget "
                f"{budget(run['budget_overrides'])}; produced by {provenance(run)}:", "",
                "| loss | accuracy, % (95% CI) | difference to CE, points (paired 95% CI) | step time vs CE |",
                "|---|---|---|---|"]
        for row in rows.values():
            step = row.get("step_overhead_vs_ce")
            out.append(f"| {row['name']} | {pct(row['test_acc'], row['test_ci95'])} | "
                       f"{100 * row['diff_vs_ce']:+.2f} ± {100 * row['diff_ci95']:.2f} | "
                       + (f"{100 * step:+.1f}% |" if step is not None else "not timed |"))
        out.append("")
    if data.get("diagnostics"):
        out += ["Diagnostics, mean over seeds: validation accuracy after each epoch, and on the first 10 test episodes "
                "the share of queries whose Proto-Triplet hinge is active, the median distance to the own prototype "
                "and the median gap to the nearest other prototype (margin 0.5):", "",
                "| setting | loss | validation accuracy by epoch, % | active hinge | own distance | gap to nearest other |",
                "|---|---|---|---|---|---|"]
        for key, per_loss in data["diagnostics"].items():
            for loss, runs in per_loss.items():
                curve = [sum(r["val_curve"][i]["val_acc"] for r in runs) / len(runs)
                         for i in range(min(len(r["val_curve"]) for r in runs))]
                mean = {k: sum(r[k] for r in runs) / len(runs)
                        for k in ("active_hinge_share", "median_own_distance", "median_gap_to_nearest_other")}
                out.append(f"| {key} | {loss} | {' → '.join(f'{100 * v:.1f}' for v in curve)} | "
                           f"{100 * mean['active_hinge_share']:.1f}% | {mean['median_own_distance']:.2f} | "
                           f"{mean['median_gap_to_nearest_other']:.2f} |")
    return "\n".join(out).rstrip() + claims_line(data) + "\n\nRaw figures in `benchmarks/results/susana_glyphs.json`."


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


def nota_answer_ratio(runs: list, method: str, shot: int, rate: str) -> str:
    """NOTA answers per NOTA query (recall / precision = predicted NOTA / true NOTA), mean over a method's seeds."""
    vals = [r["rates"][rate]["nota_recall"] / r["rates"][rate]["nota_precision"] for r in runs
            if r["method"] == method and r["shot"] == shot and r["rates"][rate]["nota_precision"] > 0]
    return f"{sum(vals) / len(vals):.2f}" if vals else "-"


def gpam_wordnet_rel(data: dict) -> str:
    """GPAM and its baselines on relation episodes with NOTA (WordNet-Rel or FewRel 2.0 NYT + SemEval)."""
    st = data["setting"]
    ep = st["episodes"]
    data_args = f" ({' '.join(st['data_args'])})" if st.get("data_args") else ""
    out = [f"{st.get('dataset', 'WordNet-Rel')}{data_args}. Budget, the same for every method: {st['epochs']} epochs of "
           f"{ep['train']} training episodes (NOTA rate {st['train_na_rate']}), {ep['val']} validation episodes per "
           f"epoch (NOTA rate {st['val_na_rate']}; best-on-validation checkpoint, where the threshold baselines also "
           f"tune their threshold), {ep['test']} fixed test episodes per NOTA rate "
           f"(5-way, {st['queries_per_episode']} queries, {st['protocol']} protocol); seeds "
           f"{', '.join(map(str, st['seeds']))}; encoder {st['encoder']}, its features computed once "
           f"({st['encode_seconds'] / 60:.1f} min). Accuracy over N + 1 classes: mean over seeds (95% CI over the "
           "test episodes of the seed-averaged accuracy); NOTA F1 pooled over the test queries, mean over seeds; "
           "selected epochs: the best-on-validation epoch of each seed (0-based); NOTA answered: how many NOTA answers "
           "per NOTA query (NOTA recall / precision, mean over seeds; 1 is calibrated, above 1 the method answers NOTA "
           "too often, below too rarely)."
           + ("" if data.get("complete", True) else " **Incomplete run**: the rows present are what finished"
              + (f" ({len(data['stopped'])} groups of runs not started: `stopped` in the results file)."
                 if data.get("stopped") else ".")), "",
           "| setting | method | " + " | ".join(f"NOTA {r:g}: acc, % (95% CI) / NOTA F1" for r in st["test_na_rates"])
           + " | NOTA answered (" + " / ".join(f"{r:g}" for r in st["test_na_rates"]) + ") | selected epochs | train s/run |",
           "|---|---|" + "---|" * len(st["test_na_rates"]) + "---|---|---|"]
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for key, e in data["summary"].items():
        setting, method, rate = key.split("/")
        rows.setdefault((setting, method), {})[rate] = e
    for (setting, method), by_rate in rows.items():
        cells = [f"{pct(by_rate[f'nota{r:g}']['acc'], by_rate[f'nota{r:g}']['ci95_over_episodes'])} / "
                 f"{by_rate[f'nota{r:g}']['nota_f1']:.3f}" if f"nota{r:g}" in by_rate else ""
                 for r in st["test_na_rates"]]
        first = next(iter(by_rate.values()))
        epochs = ", ".join("?" if x is None else str(x) for x in first.get("selected_epochs", []))
        answered = " / ".join(nota_answer_ratio(data.get("runs", []), method, int(setting.split("w")[1][:-1]), f"{r:g}")
                              for r in st["test_na_rates"])
        out.append(f"| {setting} | {method} | " + " | ".join(cells)
                   + f" | {answered} | {epochs or 'not recorded'} | {first['train_seconds_mean']:.0f} |")
    t = data.get("transfer")
    if t:
        out += ["", f"The shipped `{t['checkpoint']}` (trained on WordNet-Rel), tested as is on the same 1-shot test "
                    "episodes: " + "; ".join(f"NOTA {r}: {pct(v['acc'], v['acc_ci95'])}, NOTA F1 {v['nota_f1']:.3f} "
                                             f"(NOTA recall {v['nota_recall']:.3f})" for r, v in t["rates"].items())
                + "."]
    return "\n".join(out) + claims_line(data) + footer(data)


def raml_passage_sweep(data: dict) -> str:
    out = ["| setting | enriched | " + " | ".join(f"beta = {b:g}" for b in data["betas"]) + " | best beta on validation |",
           "|---|---|" + "---|" * (len(data["betas"]) + 1)]
    for key, s in data["settings"].items():
        for mode in ("query", "both"):
            cells = [pct(s["table"][f"{mode}/beta={b:g}"]["test"]["mean"], s["table"][f"{mode}/beta={b:g}"]["test"]["ci95"])
                     for b in data["betas"]]
            out.append(f"| {key} | {'query' if mode == 'query' else 'query and supports'} | " + " | ".join(cells)
                       + f" | {s['best_beta_on_val'][mode]:g} |")
    return ("Test accuracy, % (95% CI over the fixed test episodes), frozen MiniLM, nothing trained.\n\n"
            + "\n".join(out) + claims_line(data) + footer(data))


def faiss_bench(data: dict) -> str:
    st = data["setting"]
    out = [f"{st['passages']:,} passages ({st['corpus']}), {st['queries']:,} queries, {st['dim']}-d {st['encoder']}, "
           f"{st['metric']}, FAISS on {st['faiss_threads']} thread(s). Recall@{st['k']} is against exact search.", "",
           f"| index | parameters | build, s | queries/s (batch) | queries/s (one at a time) | recall@{st['k']} |",
           "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        out.append(f"| {r['kind']} | {r['params']} | {r['build_s']:.1f} | {r['qps_batch']:,.0f} | "
                   f"{r['qps_single']:,.0f} | {r['recall_at_10']:.4f} |")
    return "\n".join(out) + claims_line(data) + footer(data)


def passage_embedding(data: dict) -> str:
    st, tok = data["setting"], data["tokens"]
    pad = tok["padding_overhead"]
    out = [f"{st['passages_timed']:,} passages of the {st['corpus']}, in blocks of {st['block']:,}, "
           f"{st['encoder']}, torch on {st['torch_threads']} thread(s); load average "
           f"{' / '.join(str(x) for x in st['load_average_start'])} (1 / 5 / 15 min) at the start, "
           f"{' / '.join(str(x) for x in st['load_average_end'])} at the end: {st['note']}.", "",
           "| path | seconds | passages/s | padded tokens over real ones |", "|---|---|---|---|",
           f"| previous (chunks sorted by characters, batch 64, no_grad) | {data['previous_total_s']:,.1f} | "
           f"{data['previous_passages_per_s']:,.0f} | +{100 * pad['previous']:.1f}% |",
           f"| current (`TextEncoder.encode`: all sorted by tokens, inference mode) | {data['current_total_s']:,.1f} | "
           f"{data['current_passages_per_s']:,.0f} | +{100 * pad['current']:.1f}% |", "",
           f"Speed-up x{data['speedup']:.2f}; the whole corpus at the current rate: "
           f"{data['current_full_corpus_estimate_s']:,.0f} s; largest difference between the two paths' embeddings "
           f"{data['max_abs_difference']:.1e}. Passages average {tok['mean_per_passage']} tokens "
           f"({100 * tok['at_cap']:.1f}% reach the 64-token cap); tokenising all of them takes "
           f"{data['tokenise_all_s']:.1f} s."]
    if data.get("batch_size_sweep"):
        out += ["", "Batch size (current path, " + f"{data['batch_size_sweep'][0]['passages']:,} passages): "
                + ", ".join(f"{r['batch_size']}: {r['passages_per_s']:,.0f}/s" for r in data["batch_size_sweep"])
                + "."]
    p = data.get("profile")
    if p:
        out += ["", f"Profile of the current path on {p['texts']:,} passages ({p['wall_s']:.1f} s under cProfile): "
                f"transformer forward {p['transformer_s']:.1f} s, of which linear layers {p['linear_layers_s']:.1f} s "
                f"and attention {p['attention_s']:.1f} s; tokenising {p['tokenise_s']:.2f} s, padding "
                f"{p['pad_s']:.2f} s."]
    return "\n".join(out) + claims_line(data) + footer(data)


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
    for fam, f in data["families"].items():
        timing = f.get("decision_timing", {})
        if "nap-reference-path" in timing:
            ds = f["decision_seconds"]
            out += ["", f"{fam}: NAP decides in {1e3 * ds['nap']:.1f} ms (split, cached inference path; the "
                    f"reference path takes {1e3 * ds['nap-reference-path']:.1f} ms on the same {timing['runs']} runs "
                    f"and makes {'the same' if timing['same_decisions_as_reference_path'] else 'DIFFERENT'} choices) "
                    f"vs {1e3 * ds['gp-ei']:.1f} ms for GP-EI: {ds['gp-ei'] / ds['nap']:.1f}x."]
        seeds = f.get("by_seed", {}).get("regret_at_budget_mean")
        if seeds and len(seeds["nap"]) > 1:
            out += ["", f"{fam}: mean regret @{st['budget']} per PPO training seed (the claims' unit): NAP "
                    + ", ".join(f"{v:.4f}" for v in seeds["nap"]) + "; random search (same seeds' keys) "
                    + ", ".join(f"{v:.4f}" for v in seeds["random"]) + f"; GP-EI {f['by_seed']['gp-ei']:.4f}."]
        curve = f.get("training", {}).get("nap-sl", {}).get("curve")
        if curve:
            sl = f["training"]["nap-sl"]
            out += ["", f"{fam}: learning curve of the likelihood stage ({sl.get('tasks')} held-out validation "
                    f"functions, pools of {st.get('eval_num_candidates', '?')}; held-out NLL on the points outside the "
                    f"50-point context; {sl.get('iterations')} steps in {(sl.get('seconds') or 0) / 60:.0f} min, "
                    f"stopped by {sl.get('stopped_by', '?')}; `{sl.get('command', '')}`).", "",
                    "| step | task draws | train NLL | NLL @5 | NLL @50 | NLL 50 - 5 | Spearman @5 | Spearman @50 |",
                    "|---|---|---|---|---|---|---|---|"]
            for p in curve:
                out.append(f"| {p['step']} | {p['task_draws']:,} | {p['train_loss_nll']:.3f} | {p['nll@5']:.3f} | "
                           f"{p['nll@50']:.3f} | {p['nll_50_minus_5']:+.3f} ± {p['nll_50_minus_5_ci95']:.3f} | "
                           f"{p['spearman@5']:.2f} | {p['spearman@50']:.2f} |")
    diag = {fam: f["diagnostics"] for fam, f in data["families"].items() if "diagnostics" in f}
    if diag:
        out += ["", "Does the network use its history? On held-out validation functions of each family (pools of the "
                "evaluation size): NLL of the bar distribution and Spearman correlation of its predicted mean with "
                "the truth on the points outside a random context of 5, 20 or 50 points (nested contexts, paired "
                "differences 50 - 5), and the Spearman correlation of the acquisition over a task's candidates "
                "under its own 20-point history vs another task's (1 = the history is ignored).", "",
                "| family | model | tasks | NLL @5 / @20 / @50 | NLL 50 - 5 | Spearman @5 / @20 / @50 | "
                "Spearman 50 - 5 | own vs other history |", "|---|---|---|---|---|---|---|---|"]
        for fam, models in diag.items():
            for kind, d in models.items():
                sizes = [str(n) for n in d["context_sizes"]]
                lo, hi = sizes[0], sizes[-1]
                nd, rd = d[f"nll_{hi}_minus_{lo}"], d[f"spearman_{hi}_minus_{lo}"]
                sw = d["history_swap_spearman"]
                label = "NAP (policy)" if kind == "nap" else "likelihood head only (EI)"
                out.append(f"| {fam} | {label} | {d['tasks']} | " + " / ".join(f"{d['nll'][n]['mean']:.3f}" for n in sizes)
                           + f" | {nd['diff']:+.3f} ± {nd['ci95']:.3f} | "
                           + " / ".join(f"{d['spearman'][n]['mean']:.2f}" for n in sizes)
                           + f" | {rd['diff']:+.2f} ± {rd['ci95']:.2f} | {sw['mean']:.3f} ± {sw['ci95']:.3f} |")
    return "\n".join(out) + claims_line(data) + footer(data)


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


def raml_wordnet_knowledge(data: dict) -> str:
    """The knowledge-gap WordNet benchmark: every method between its floor (no passages) and ceiling (gold passage),
    the share of that gap each closes, the gold-passage hit rate of retrieval, and the seed-paired claims."""
    st, ep = data["setting"], data["setting"]["episodes"]
    hit = data["diagnostics"]["gold_hit_rate_test"]
    seeds = "; ".join(f"5w{k}s seeds {', '.join(map(str, v))}" for k, v in st["seeds_run"].items())
    out = [f"Queries are lemmas alone; the corpus ({data['index']['passages']:,} passages) holds their glosses. Budget "
           f"per run: {st['epochs']} epochs of {ep['train']} training episodes, {ep['val']} validation episodes per "
           f"epoch ({st['selection']}), the same {ep['test']} fixed test episodes for every run (5-way, "
           f"{st['q_query']} queries); {seeds}; encoder {st['encoder']}; RAML: {st['raml']}. Accuracy: mean over "
           "seeds, 95% CI over the test episodes of the seed-averaged accuracy; gap closed: (method - floor) / "
           "(ceiling - floor). Retrieval finds the gold passage (the query's own gloss) for "
           f"{100 * hit['top1']:.1f}% of the {hit['texts']:,} test texts at rank 1 and {100 * hit['topP']:.1f}% in "
           f"the top {hit['P']}.", "",
           "| setting | method | accuracy, % (95% CI) | per-seed means, % | selected epochs | majority share | "
           "gap closed | learned (per seed) |", "|---|---|---|---|---|---|---|---|"]
    for key, e in data["summary"].items():
        setting, method = key.split("/", 1)
        runs = [r for r in data["runs"] if f"5w{r['shot']}s" == setting and r["method"] == method]
        closed = data.get("bounds", {}).get(setting, {}).get("gap_closed", {}).get(method)
        bound = {"raml-no-passages": "0 (floor)", "raml-gold-passage": "1 (ceiling)"}.get(method)
        learned = "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vs) for k, vs in e.get("learned", {}).items())
        out.append(f"| {setting} | {method} | {pct(e['mean'], e['ci95_over_episodes'])} | "
                   + ", ".join(f"{100 * v:.1f}" for v in e["seed_means"])
                   + f" | {', '.join(str(r.get('selected_epoch', '?')) for r in runs)} | {e['majority_share']:.3f}"
                   + f"{' (collapsed)' if e.get('collapsed') else ''} | "
                   + (bound or (f"{closed:.2f}" if closed is not None else "-")) + f" | {learned} |")
    if data.get("stopped"):
        out += ["", "Stopped by the budget: " + "; ".join(data["stopped"]) + "."]
    m = data.get("machine", {})
    return ("\n".join(out) + claims_line(data) + "\n\nProduced by " + "; ".join(f"`{c}`" for c in data["commands"])
            + f" (commit {m.get('git', '?')}, {m.get('cores', '?')} CPU cores, {m.get('torch_threads', '?')} torch "
            f"thread(s), load average {m.get('load_average_1m', '?')} when it finished, torch {m.get('torch', '?')}); "
            "raw figures in `benchmarks/results/raml_wordnet_knowledge.json`.")


def claim_basis(c: dict) -> str:
    """On what a claim's interval stands: training seeds (the protocol), or items - of fixed things, or, between
    trained methods measured before the protocol, items pooled from a few seeds (marked pre-protocol)."""
    if c.get("unit") == "seeds":
        reason = f"; {c['seeds_reason']}" if c.get("seeds_reason") else ""
        return f"over {c['seeds']} seeds, {c.get('items', '?')} items{reason}"
    if c.get("trained"):
        return f"n = {c['n']} items of {c.get('seeds', '?')} seed(s), pre-protocol"
    return f"n = {c['n']}"


def claims_line(data: dict) -> str:
    """The results file's claims, one clause each: id, paired difference +- 95% CI, its basis, and whether it holds."""
    claims = data.get("claims") or []
    if not claims:
        return ""
    return "\n\nClaims: " + "; ".join(
        f"`{c['id']}` ({c['diff']:+.4g} ± {c['ci95']:.3g}, {claim_basis(c)}): "
        f"{'holds' if c['holds'] else 'does not hold'}" for c in claims) + "."


def demo_phases(data: dict) -> str:
    full, demo = (data["estimated_seconds"][k] for k in ("full_config", "with_trainer_demo_yaml"))
    u = data["units"]
    lines = ["| phase | full config, s | with configs/trainer/demo.yaml, s |", "|---|---|---|"]
    lines += [f"| {phase.replace('_', ' ')} | {full[phase]:.0f} | {demo[phase]:.0f} |" for phase in full]
    return ("\n".join(lines) + f"\n\nUnits: a training step {u['train_step_s']['mean']:.3f} ± "
            f"{u['train_step_s']['ci95']:.3f} s (n = {u['train_step_s']['n']}), an evaluation episode "
            f"{u['eval_episode_s']['mean']:.3f} ± {u['eval_episode_s']['ci95']:.3f} s (n = {u['eval_episode_s']['n']}); "
            "totals are units × the config's counts." + claims_line(data) + footer(data))


def batched_episodes(data: dict) -> str:
    out = [f"Training steps (loss, backward, Adam) on {data.get('device', 'cpu')}, episodes drawn beforehand; "
           "median of the repeats, speed-up over one episode per step.", "",
           "| system | setting | episodes per step B | episodes/s | speed-up vs B = 1 |", "|---|---|---|---|---|"]
    for name, r in data["systems"].items():
        for b, rate in r["median_episodes_per_s"].items():
            out.append(f"| {name} | {r['setting']} | {b} | {rate:.2f} | {r['speedup_vs_b1'][b]:.2f}× |")
    return "\n".join(out) + claims_line(data) + footer(data)


RTL_NAMES = {"meta_rtl": "Meta-RTL", "frozen_policy": "Meta-RTL, frozen policy", "uniform": "uniform Reptile",
             "exp3": "EXP3 weighting", "multitask": "multi-task + fine-tune", "target_only": "target-only fine-tune",
             "cosine": "untrained cosine", "meta_rtl_normalised": "Meta-RTL, normalised rewards"}


def meta_rtl(data: dict) -> str:
    """Meta-RTL on WordNet-QA (clean or with mislabelled sources): accuracy over seeds per arm, Meta-RTL minus each
    arm (interval over seeds), the epochs model selection picked, the source weights and the reward diagnostic."""
    st, summary = data["setting"], data["summary"]
    methods = st["methods"]
    harm = st.get("mislabelled_sources") or []
    out = [f"Targets {', '.join(st['targets'])} (leave-one-task-out, the other six tasks as sources"
           + (f"; **{', '.join(harm)} mislabelled**: every training answer moved to a wrong choice" if harm else "")
           + f"); target sizes {', '.join(map(str, st['sizes']))}; seeds {', '.join(map(str, st['seeds']))}; "
           f"{st['meta_iterations']} meta-iterations then fine-tuning, {st['epochs']} epochs of "
           f"{st['iterations_per_epoch']} steps; rewards: normalisation `{st['reward_normalization']}`, "
           f"{st['reward_batches']} target batch(es); checkpoint candidates: {st['checkpoint_candidates']}; "
           f"{st['test_items']} fixed test items; encoder {st['encoder']}. Accuracy: mean over seeds ± 95% "
           "t-interval over seeds (the untrained cosine scorer is one fixed model).", "",
           "| target | size | " + " | ".join(RTL_NAMES[m] for m in methods) + " | untrained cosine |",
           "|---|---|" + "---|" * (len(methods) + 1)]
    table = summary["per_target"]
    for target in st["targets"]:
        for size in st["sizes"]:
            cells = [table.get(f"{target}/{size}/{m}") for m in methods]
            out.append(f"| {target} | {size} | " + " | ".join(pct(c["mean"], c["ci95_over_seeds"]) if c else ""
                                                            for c in cells)
                       + f" | {pct(table[f'{target}/cosine']['mean'])} |")
    arms = [m for m in [*methods, "cosine"] if m != "meta_rtl"]
    out += ["", "Meta-RTL minus each arm, points (per seed the mean paired difference over the targets' test items; "
            "95% t-interval over seeds):", "", "| size | " + " | ".join(f"vs {RTL_NAMES[m]}" for m in arms) + " |",
            "|---|" + "---|" * len(arms)]
    for size in st["sizes"]:
        cells = [summary["meta_rtl_minus"].get(f"{size}/meta_rtl - {m}") for m in arms]
        out.append(f"| {size} | " + " | ".join(f"{100 * c['diff']:+.2f} ± {100 * c['ci95']:.2f}" if c else ""
                                               for c in cells) + " |")
    out += ["", "Epochs model selection picked (every arm's candidates: each of the epochs; the meta phase is the first "
            f"{st['meta_iterations'] // st['iterations_per_epoch']}): " + "; ".join(
                f"{RTL_NAMES[m]} " + ", ".join(f"{e}×{epochs.count(e)}" for e in sorted(set(epochs)))
                for m, epochs in summary["selected_epochs"].items()) + "."]
    weights = summary["weights"]
    if weights:
        sources = {s for w in weights.values() for s in w}
        order = [s for s in data["checks"] if s in sources]
        when = ("after the last meta-iteration" if any("selected_weights" in r for r in data["runs"]) else
                "at the selected checkpoint (iteration 50 when epoch 0 was selected, else 100)")
        out += ["", f"Source weights {when} (mean over seeds; 1/K = "
                f"{1 / len(next(iter(weights.values()))):.3f} is uniform"
                + (", mislabelled sources in bold" if harm else "") + "):", "",
                "| target / arm | " + " | ".join(f"**{s}**" if s in harm else s for s in order) + " |",
                "|---|" + "---|" * len(order)]
        for key, w in weights.items():
            target, method = key.split("/")
            out.append(f"| {target} / {RTL_NAMES[method]} | " + " | ".join(
                f"{w[s]:.3f}" if s in w else "(target)" for s in order) + " |")
    signal = {k: v for k, v in summary["reward_signal"].items() if k.endswith("/uniform") and v}
    if signal:
        out += ["", "Reward diagnostic (uniform Reptile's runs, where every source is drawn alike): per source, the t "
                "statistic of its reward minus the mean reward of the sources drawn with it (|t| > 2: the reward tells "
                "the source apart from the others): " + "; ".join(
                    f"{key.split('/')[0]}: " + ", ".join(f"{s} {v['t']:+.1f}" for s, v in sig.items())
                    for key, sig in signal.items()) + "."]
    if harm:
        by_seed = summary["harmful_weight_by_seed"]
        out += ["", f"Mean weight of the mislabelled sources {when}, per seed: " + "; ".join(
            f"{RTL_NAMES[m]} " + ", ".join(f"{v:.3f}" for v in w.values()) for m, w in by_seed.items() if w) + "."]
        trajectory = []
        for m in ("meta_rtl", "meta_rtl_normalised", "exp3"):
            runs = [r for r in data["runs"] if r["method"] == m and "weights_every_10" in r]
            if runs:
                per_run = [[sum(row[list(r["final_weights"]).index(h)] for h in harm) / len(harm)
                            for row in r["weights_every_10"]] for r in runs]
                steps = min(map(len, per_run))
                trajectory.append(f"{RTL_NAMES[m]} " + ", ".join(
                    f"{sum(t[i] for t in per_run) / len(per_run):.3f}" for i in range(steps)))
        at = ("10, 20, 30" if any("selected_weights" in r for r in data["runs"]) else "1, 11, 21")
        out += ["", f"Their mean weight at meta-iterations {at}, ... (all runs): " + "; ".join(trajectory) + "."]
    checks = data["checks"]
    out += ["", "Benchmark checks per task (test split): choice-only linear scorer (chance 25%) / untrained "
            "cosine(prompt, choice): " + "; ".join(
                f"{name} {100 * c['choice_only'][0]:.1f} / {100 * c['cosine'][0]:.1f}" for name, c in checks.items())
            + "."]
    return "\n".join(out) + claims_line(data) + footer(data)


def meta_dmoe_glyphs_domains(data: dict) -> str:
    seeds = ", ".join(map(str, data["seeds"]))
    ad, ind = data["adaptation"], data["erm_in_domain"]
    out = [f"Budget: {budget(data.get('budget_overrides', []))} on top of `{data['config']}`; seeds {seeds}. Every method "
           f"is scored on the same {len(data['target_domains'])} held-out target domains; accuracy per domain is "
           "averaged over the seeds, then mean ± 95% CI and the worst domain are over target domains.", "",
           "| method | mean accuracy, % (95% CI) | worst domain, % | per seed, % |", "|---|---|---|---|"]
    for r in data["methods"].values():
        out.append(f"| {r['label']} | {pct(r['acc'], r['ci95'])} | {100 * r['worst_acc']:.1f} ({r['worst_domain']}) | "
                   + ", ".join(f"{100 * a:.1f}" for a in r["per_seed_acc"]) + " |")
    out += ["", f"ERM on held-out images of its own training domains: {100 * ind['acc']:.2f} % against "
                f"{100 * ind['held_out_acc']:.2f} % on the target domains (a drop of {100 * ind['drop']:.1f} points). "
                f"Adaptation cost: {ad['steps']} gradient step on {ad['support_size']} unlabelled images per target "
                f"domain, {ad['seconds_per_domain_median']:.3f} s median ({ad['domains_timed']} domains timed, "
                f"{data.get('torch_threads', '?')} torch thread)."]
    return "\n".join(out) + claims_line(data) + footer(data)


def omniglot_runs(data: dict) -> str:
    methods, zero = data.get("methods", {}), data.get("zero_shot", {})
    out = [f"Data: {data['data']}. Error rate over the 400 test items of the 20 runs (20-way 1-shot), as the paper "
           "scores them; our rows average each run's accuracy over the seeds, the first interval is over the 20 runs, "
           "the second over the seeds (Student t). Published rows: " + data["published_note"] + ".", "",
           "| method | learned from | error rate, % (95% CI over runs) | 95% CI over seeds | seeds | selected epoch "
           "per seed (of) | validation gain in the last 2 epochs, points | training per seed |",
           "|---|---|---|---|---|---|---|---|"]
    for name, err in data["published_error"].items():
        out.append(f"| {name} (Lake et al. 2015) | 30 background alphabets | {err:.1f} | | | | | |")
    for m in methods.values():
        seeds_ci = f"± {m['error_ci95_seeds']:.1f}" if m.get("error_ci95_seeds") is not None else ""
        epochs = m["runs"][0]["epochs"]
        stopped = f"; budget-stopped in {m['budget_stopped_seeds']}" if m["budget_stopped_seeds"] else ""
        start = f" (+ Glyphs: `{m['init_from']}`)" if m.get("init_from") else ""
        out.append(f"| {m['label']} | 6 minimal-set alphabets{start} | {m['error_rate']:.1f} ± "
                   f"{m['error_ci95_runs']:.1f} | {seeds_ci} | {len(m['seeds'])} | "
                   f"{', '.join(str(e) for e in m['selected_epochs'])} (of 0-{epochs - 1}){stopped} | "
                   + (f"{m['val_gain_last_two_epochs']:+.1f}" if m.get("val_gain_last_two_epochs") is not None else "")
                   + f" | {m['train_minutes_median']:.1f} min |")
    for name, z in zero.items():
        out.append(f"| `{name}`, zero-shot | {z['setting']} | {z['error_rate']:.1f} ± {z['error_ci95']:.1f} "
                   "| | 1 (shipped) | | | |")
    runs = {m["command"]: m for m in methods.values()}
    out += ["", "Budget of every training (on top of its config): " + budget(next(iter(methods.values()))["budget_overrides"]
            if methods else []) + "; episodes " + budget(next(iter(methods.values()))["shape"] if methods else [])
            + "; MAML/ANIL also " + budget(next((m["meta_overrides"] for m in methods.values() if m["meta_overrides"]),
                                               [])) + ". Produced by " + "; ".join(provenance(m) for m in runs.values())
            + (f"; zero-shot rows by `{next(iter(zero.values()))['command']}`" if zero else "") + "."]
    return "\n".join(out) + claims_line(data) + footer(data)


RENDERERS: dict[str, Callable[[dict], str]] = {
    "maml_glyphs": maml_glyphs, "batched_episodes": batched_episodes,
    "protonet_glyphs": protonet_glyphs, "throughput": throughput, "susana_glyphs": susana_glyphs,
    "raml_wordnet": raml_wordnet, "raml_wordnet_knowledge": raml_wordnet_knowledge,
    "raml_passage_sweep": raml_passage_sweep, "faiss_bench": faiss_bench, "nap": nap,
    "passage_embedding": passage_embedding, "demo_phases": demo_phases,
    "gpam_wordnet_rel": gpam_wordnet_rel, "gpam_fewrel_nyt_semeval": gpam_wordnet_rel,
    "meta_rtl_wordnet_qa": meta_rtl, "meta_rtl_harmful_sources": meta_rtl,
    "meta_dmoe_glyphs_domains": meta_dmoe_glyphs_domains,
    "omniglot_runs": omniglot_runs,
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


def registry_metrics(metrics: dict) -> str:
    """One cell for an entry's recorded figures: accuracy ± CI over its test episodes (or domains), or NAP's
    regret after the trials it records."""
    if "test_acc" in metrics:
        over = next((f"{metrics[k]:,} {k[5:]}" for k in ("test_episodes", "test_domains") if k in metrics), "")
        return pct(metrics["test_acc"], metrics.get("test_ci95")) + (f" % ({over})" if over else " %")
    regrets = sorted((int(k.split("@")[1]), k) for k in metrics if k.startswith("test/regret@") and "ci95" not in k)
    if regrets:
        return "regret " + ", ".join(f"@{t} {metrics[k]:.4f} ± {metrics[k + '_ci95']:.4f}" for t, k in regrets) + (
            f" ({metrics['test_runs']} runs)" if "test_runs" in metrics else "")
    return ""


def registry(system: str) -> str:
    """The registry entries of one system (``all``: every entry) as a table: name, setting, figures, command."""
    import yaml

    entries = yaml.safe_load(REGISTRY.read_text()) or {}
    rows = [(name, e) for name, e in entries.items() if system == "all" or e.get("system") == system]
    if not rows:
        return f"*No checkpoint of system `{system}` in `checkpoints/registry.yaml` yet.*"
    lines = ["| name | system | setting | test result (95% CI) | produced by |", "|---|---|---|---|---|"]
    for name, e in rows:
        setting = str(e.get("setting", "")).replace("|", "/")
        lines.append(f"| `{name}` | {e.get('system', '?')} | {setting} | {registry_metrics(e.get('metrics', {}))} | "
                     f"`{e.get('command', '?')}` |")
    return ("\n".join(lines) + "\n\nFrom `checkpoints/registry.yaml`; test one with "
            f"`zoo test --pretrained {rows[0][0]}`.")


def config_summary(path: Path) -> str:
    """The first sentence of a config's header comment (the comment lines before its first key); a long one is cut
    at its first colon (what the config is comes before it, the details after). Periods and colons inside
    parentheses ("(Chen et al. 2019)") do not count."""
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("# ").strip())
    text = " ".join(w for w in words if w)
    depth, sentence_end, colon = 0, len(text), None
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch == "." and text[i + 1:i + 2] in ("", " "):
            sentence_end = i + 1
            break
        if depth == 0 and ch == ":" and colon is None:
            colon = i
    sentence = text[:colon] if sentence_end > 120 and colon is not None else text[:sentence_end]
    return sentence.replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")  # a table cell, not HTML


def configs(directory: str) -> str:
    """The shipped configs of ``configs/<directory>/`` as a table: the name ``--config`` takes, the file, and what
    the header says it is."""
    files = sorted((CONFIGS / directory).glob("*.yaml"), key=lambda f: f.stem)
    if not files:
        return f"*No config under `configs/{directory}/`.*"
    lines = ["| `--config` name | file | what it is |", "|---|---|---|"]
    for f in files:
        lines.append(f"| `{directory}/{f.stem}` | `configs/{directory}/{f.name}` | {config_summary(f)} |")
    return "\n".join(lines)


def fill(text: str) -> str:
    """``text`` with every generated block rendered afresh from the results files and the registry."""

    def one(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        body = {"results": render, "registry": registry, "configs": configs}[kind](name)
        return f"<!-- {kind}:{name} -->\n{body}\n<!-- /{kind}:{name} -->"

    return BLOCK.sub(one, text)


def targets() -> list[Path]:
    """The files holding generated blocks: the README and every page of the documentation site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for path in targets():
        text = path.read_text()
        new = fill(text)
        if new == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    if check and stale:
        print("stale generated blocks (run `python benchmarks/report.py`): "
              + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
