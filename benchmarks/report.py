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


def gpam_wordnet_rel(data: dict) -> str:
    st = data["setting"]
    ep = st["episodes"]
    out = [f"Budget: {st['epochs']} epochs of {ep['train']} training episodes (NOTA rate {st['train_na_rate']}), "
           f"{ep['val']} validation episodes per epoch (NOTA rate {st['val_na_rate']}; best-on-validation checkpoint, "
           f"where the threshold baseline also tunes its threshold), {ep['test']} fixed test episodes per NOTA rate "
           f"(5-way, {st['queries_per_episode']} queries, {st['protocol']} protocol); seeds "
           f"{', '.join(map(str, st['seeds']))}; encoder {st['encoder']}, its features computed once "
           f"({st['encode_seconds'] / 60:.1f} min)."
           + ("" if data.get("complete", True) else " **Incomplete run**: the rows present are what finished."), "",
           "| setting | method | " + " | ".join(f"NOTA {r:g}: acc, % (95% CI) / NOTA F1" for r in st["test_na_rates"])
           + " | train s/run |", "|---|---|" + "---|" * len(st["test_na_rates"]) + "---|"]
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for key, e in data["summary"].items():
        setting, method, rate = key.split("/")
        rows.setdefault((setting, method), {})[rate] = e
    for (setting, method), by_rate in rows.items():
        cells = [f"{pct(by_rate[f'nota{r:g}']['acc'], by_rate[f'nota{r:g}']['ci95_over_episodes'])} / "
                 f"{by_rate[f'nota{r:g}']['nota_f1']:.3f}" if f"nota{r:g}" in by_rate else ""
                 for r in st["test_na_rates"]]
        train = next(iter(by_rate.values()))["train_seconds_mean"]
        out.append(f"| {setting} | {method} | " + " | ".join(cells) + f" | {train:.0f} |")
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


RTL_NAMES = {"meta_rtl": "Meta-RTL", "uniform": "uniform Reptile", "exp3": "EXP3 weighting",
             "multitask": "multi-task + fine-tune", "target_only": "target-only fine-tune"}


def meta_rtl_wordnet_qa(data: dict) -> str:
    st = data["setting"]
    summary = data["summary"]
    out = [f"Targets {', '.join(st['targets'])} (leave-one-task-out, the other six tasks as sources); target sizes "
           f"{', '.join(map(str, st['sizes']))}; seeds {', '.join(map(str, st['seeds']))}; {st['meta_iterations']} "
           f"meta-iterations then fine-tuning, {st['epochs']} epochs of {st['iterations_per_epoch']} steps, best on "
           f"{st['dev_items']} target dev items, {st['test_items']} fixed test items; encoder {st['encoder']}. "
           "Accuracy: mean over seeds, 95% CI over test items.", "",
           "| target | size | " + " | ".join(RTL_NAMES[m] for m in st["methods"]) + " |",
           "|---|---|" + "---|" * len(st["methods"])]
    for target in st["targets"]:
        for size in st["sizes"]:
            cells = [summary["per_target"].get(f"{target}/{size}/{m}") for m in st["methods"]]
            out.append(f"| {target} | {size} | " + " | ".join(pct(c["mean"], c["ci95_over_items"]) if c else ""
                                                            for c in cells) + " |")
    out += ["", "Meta-RTL minus each baseline, points (paired over the test items of all targets, 95% CI):", "",
            "| size | " + " | ".join(f"vs {RTL_NAMES[m]}" for m in st["methods"] if m != "meta_rtl") + " |",
            "|---|" + "---|" * (len(st["methods"]) - 1)]
    for size in st["sizes"]:
        cells = [summary["pooled_over_targets"].get(f"{size}/meta_rtl - {m}") for m in st["methods"]
                 if m != "meta_rtl"]
        out.append(f"| {size} | " + " | ".join(f"{100 * c['mean']:+.2f} ± {100 * c['ci95']:.2f}" if c else ""
                                               for c in cells) + " |")
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
    "raml_wordnet": raml_wordnet, "raml_passage_sweep": raml_passage_sweep, "faiss_bench": faiss_bench, "nap": nap, "demo_phases": demo_phases,
    "gpam_wordnet_rel": gpam_wordnet_rel,
    "meta_rtl_wordnet_qa": meta_rtl_wordnet_qa,
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
