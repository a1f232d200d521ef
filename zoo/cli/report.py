"""``zoo report RUN... [--output report.html]``: one readable report of finished runs, offline or on W&B.

    zoo report runs/metazoo/abc123 runs/metazoo/def456                       # report.html + report.md
    zoo report runs/metazoo/abc123 runs/metazoo/def456 --entity me --publish # also save a W&B Report, print its URL

Offline (always): a self-contained HTML file (inline CSS, every plot an embedded PNG, no scripts, nothing fetched)
and a Markdown summary beside it (``report.md``), with

* an overview: each run's system, dataset, test accuracy +- 95% CI and its test episode set;
* the resolved configs side by side, differing keys first and highlighted;
* learning curves (from each run's ``metrics.csv``), test accuracy +- CI, paired differences on shared episodes
  (:mod:`zoo.cli.compare`; pairs tested on different episodes are listed with the reason instead), per-episode accuracy
  histograms, the episode gallery pictures, and NAP's regret after 10, 25 and all trials where a run logged them.

Online (``--publish``, credentials configured, ``--entity`` given): a W&B Report (``wandb-workspaces``, the
``reports`` extra) of the same runs with the same panels, saved and its URL printed. :func:`wandb_report` only
builds it, without network, which is what the tests inspect; ``--entity`` is explicit because the library's
default asks the server.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safefiles import atomic_write_text
from zoo.cli.compare import Comparison, EpisodeSetMismatch, compare_runs
from zoo.training.metrics import mean_ci95
from zoo.cli.runs import Run, flatten, load_run, run_id_of

#: Learning-curve panels, in order; a key is drawn when any run logged it. A training metric logged both per step
#: and per epoch (``train/loss_step``, ``train/loss_epoch``) is drawn per epoch (:func:`curve_keys`).
CURVE_KEYS = ("train/loss", "train/acc", "val/acc", "val/loss", "train/episode_return", "val/regret")
#: NAP's test metrics: regret after that many trials (``None``: after the whole budget).
REGRET_KEYS = ((10, "test/regret@10"), (25, "test/regret@25"), (None, "test/regret"))
#: W&B keys the runs log (callbacks.EpisodeTable, callbacks.EpisodeGallery), used by the online report's panels.
WANDB_EPISODE_TABLE = "test/episode_table"
WANDB_GALLERY = "test/episode"


@dataclass
class Figure:
    """One embedded plot: a heading, a one-line caption and the PNG bytes."""

    title: str
    caption: str
    png: bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def test_accuracy(run: Run) -> tuple[float, float] | None:
    """Mean test accuracy and its 95% half-width from the per-episode CSV, else from the logged metrics."""
    if run.episodes:
        return mean_ci95(list(run.episodes.values()))
    acc, ci = run.last("test/acc"), run.last("test/acc_ci95")
    return (acc, ci or 0.0) if acc is not None else None


def _short(config: dict, section: str) -> str:
    value = config.get(section)
    if isinstance(value, dict):
        return str(value.get("class_path", "?")).rsplit(".", 1)[-1]
    return "?"


def paired_comparisons(runs: list[Run]) -> list[tuple[Run, Run, Comparison | str]]:
    """Every pair of runs with their paired difference, or the reason they cannot be paired."""
    out: list[tuple[Run, Run, Comparison | str]] = []
    for a, b in itertools.combinations(runs, 2):
        try:
            out.append((a, b, compare_runs(a, b)))
        except EpisodeSetMismatch as err:
            out.append((a, b, str(err)))
    return out


def config_table(runs: list[Run]) -> tuple[list[str], list[str], dict[str, list[Any]]]:
    """``(differing keys, equal keys, {key: value per run})`` over the flattened resolved configs."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat))
    values = {k: [f.get(k, "—") for f in flat] for k in keys}
    differing = [k for k in keys if len({repr(v) for v in values[k]}) > 1]
    return differing, [k for k in keys if k not in differing], values


# -- figures ---------------------------------------------------------------------------------------------------
def curve_keys(runs: list[Run]) -> list[tuple[str, str]]:
    """The learning-curve panels: ``(metric key, x column)`` for each :data:`CURVE_KEYS` entry some run logged.

    A metric Lightning logged both per step and per epoch is drawn per epoch (``train/loss_epoch`` against
    ``epoch``): the step curve of a short run is a point or two, and the epoch means are what the validation
    curve beside it is compared with. Validation metrics are per epoch too; anything else is drawn by step.
    """
    panels = []
    for key in CURVE_KEYS:
        for candidate, x in ((f"{key}_epoch", "epoch"), (f"{key}_step", "step"), (key, "step")):
            if any(r.curve(candidate)[1] for r in runs):
                by_epoch = x == "epoch" or (key.startswith("val/") and all(
                    "epoch" in row for r in runs for row in r.metrics if candidate in row))
                panels.append((candidate, "epoch" if by_epoch else "step"))
                break
    return panels


def learning_curves(runs: list[Run]) -> Figure | None:
    panels = curve_keys(runs)
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3), squeeze=False)
    banded = False
    for ax, (key, x) in zip(axes[0], panels):
        for run in runs:
            xs, values = run.curve(key, x)
            if not values:
                continue
            (line,) = ax.plot(xs, values, marker="o" if len(values) < 10 else None, ms=3, label=run.name)
            # The 95% interval over the evaluation episodes, where the run logged one (<key>_ci95, same rows).
            rows = [row for row in run.metrics if key in row]
            if all(f"{key}_ci95" in row for row in rows):
                half = [row[f"{key}_ci95"] for row in rows]
                ax.fill_between(xs, [v - h for v, h in zip(values, half)], [v + h for v, h in zip(values, half)],
                                color=line.get_color(), alpha=0.2, lw=0)
                banded = True
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    band = "; shaded: the 95% interval over the validation episodes" if banded else ""
    return Figure("Learning curves", f"Logged training and validation metrics (metrics.csv), per epoch where "
                  f"the metric is logged per epoch{band}.", _png(fig))


def accuracy_figure(runs: list[Run]) -> Figure | None:
    rows = [(r.name, acc) for r in runs if (acc := test_accuracy(r)) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rows)))
    ax.errorbar([100 * a for _, (a, _) in rows], range(len(rows)), xerr=[100 * c for _, (_, c) in rows],
                fmt="o", capsize=4)
    ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=8)
    ax.set_xlabel("test accuracy, % (95% CI)", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return Figure("Test accuracy", "Mean over the fixed test episodes, 95% confidence interval.", _png(fig))


def differences_figure(pairs: list[tuple[Run, Run, Comparison | str]]) -> Figure | None:
    valid = [c for _, _, c in pairs if isinstance(c, Comparison)]
    if not valid:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(valid)))
    ax.errorbar([100 * c.diff for c in valid], range(len(valid)), xerr=[100 * c.ci95 for c in valid], fmt="o",
                capsize=4, color="#444")
    ax.axvline(0, color="#d62728", lw=1)
    ax.set_yticks(range(len(valid)), [f"{c.a} − {c.b}" for c in valid], fontsize=8)
    ax.set_xlabel("paired difference, accuracy points (95% CI)", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return Figure("Paired differences", "A − B on the episodes both runs were tested on; an interval that excludes "
                  "the red line is a difference at 95%.", _png(fig))


def histogram_figure(runs: list[Run]) -> Figure | None:
    with_episodes = [r for r in runs if r.episodes]
    if not with_episodes:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = [i / 20 for i in range(21)]
    for run in with_episodes:
        ax.hist([100 * a for a in run.episodes.values()], bins=[100 * b for b in bins], histtype="step", lw=1.5,
                label=f"{run.name} ({len(run.episodes)} episodes)")
    ax.set_xlabel("per-episode accuracy, %", fontsize=8)
    ax.set_ylabel("episodes", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("Per-episode accuracy", "Distribution of accuracy over the test episodes (test_episodes.csv).",
                  _png(fig))


def regret_figure(runs: list[Run]) -> Figure | None:
    nap = [r for r in runs if r.last("test/regret") is not None]
    if not nap:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    for run in nap:
        budget = flatten(run.config).get("model.init_args.eval_budget")
        points = [(k if k is not None else budget, run.last(key)) for k, key in REGRET_KEYS]
        points = [(k, v) for k, v in points if k is not None and v is not None]
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=run.name)
    ax.set_xlabel("trials", fontsize=8)
    ax.set_ylabel("normalised regret", fontsize=8)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("NAP regret", "Mean normalised regret of the test tasks after 10, 25 and all trials.", _png(fig))


def build_figures(runs: list[Run], pairs: list[tuple[Run, Run, Comparison | str]]) -> list[Figure]:
    figures = [learning_curves(runs), accuracy_figure(runs), differences_figure(pairs), histogram_figure(runs),
               regret_figure(runs)]
    figures += [Figure(f"Test episode: {r.name}", "One row per class (its number and name): the support images, "
                       "then the queries, framed green (right) or red (wrong), each captioned with the row it was "
                       "predicted as (callbacks.EpisodeGallery).", r.gallery.read_bytes()) for r in runs if r.gallery]
    return [f for f in figures if f is not None]


# -- documents -------------------------------------------------------------------------------------------------
def _overview_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for r in runs:
        acc = test_accuracy(r)
        es = r.episode_set or {}
        name = r.name + (f" (unfinished: {r.unfinished})" if r.unfinished else "")
        rows.append([name, _short(r.config, "model"), _short(r.config, "data"),
                     f"{100 * acc[0]:.2f} ± {100 * acc[1]:.2f}" if acc else "—",
                     str(len(r.episodes) or "—"), es.get("hash", "not recorded")[:12]])
    return rows


OVERVIEW_HEADER = ["run", "system", "dataset", "test accuracy, % (95% CI)", "test episodes", "episode set"]


def _pair_rows(pairs: list[tuple[Run, Run, Comparison | str]]) -> list[list[str]]:
    return [[a.name, b.name, f"{100 * c.diff:+.2f} ± {100 * c.ci95:.2f}", str(c.n)] if isinstance(c, Comparison)
            else [a.name, b.name, "not comparable", c] for a, b, c in pairs]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x: Any) -> str:
        # Escaped: Markdown viewers render inline HTML, and config values and run names are the user's text.
        return html.escape(str(x)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows])


def render_markdown(runs: list[Run], pairs: list[tuple[Run, Run, Comparison | str]], html_name: str) -> str:
    differing, _, values = config_table(runs)
    parts = [f"# Metazoo report: {len(runs)} run(s)", "", f"Plots: {html.escape(html_name)} (open it in a browser).",
             "", "## Test accuracy", "", markdown_table(OVERVIEW_HEADER, _overview_rows(runs)), ""]
    if pairs:
        parts += ["## Paired differences (A − B, accuracy points, 95% CI)", "",
                  markdown_table(["A", "B", "A − B", "shared episodes / reason"], _pair_rows(pairs)), ""]
    parts += ["## Config keys that differ", ""]
    parts += [markdown_table(["key", *[r.name for r in runs]], [[k, *values[k]] for k in differing])
              if differing else "None: the resolved configs are identical.", ""]
    return "\n".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}tr.diff td{background:#fff3c4}code{font-size:12px}
figure{margin:1em 0 2em}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}
details summary{cursor:pointer;margin:.5em 0}"""


def _html_table(header: list[str], rows: list[list[Any]], row_class: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(runs: list[Run], pairs: list[tuple[Run, Run, Comparison | str]], figures: list[Figure]) -> str:
    differing, equal, values = config_table(runs)
    names = [r.name for r in runs]
    parts = [f"<h1>Metazoo report: {len(runs)} run(s)</h1>",
             "<p>Runs: " + ", ".join(f"<code>{html.escape(str(r.path))}</code>" for r in runs) + "</p>",
             "<h2>Test accuracy</h2>", _html_table(OVERVIEW_HEADER, _overview_rows(runs))]
    if pairs:
        parts += ["<h2>Paired differences on shared episodes</h2>",
                  _html_table(["A", "B", "A − B, points (95% CI)", "shared episodes / reason"], _pair_rows(pairs))]
    parts += ["<h2>Resolved configs</h2>",
              f"<p>{len(differing)} key(s) differ (highlighted); {len(equal)} are the same.</p>",
              _html_table(["key", *names], [[k, *values[k]] for k in differing], ["diff"] * len(differing)),
              "<details><summary>Keys with the same value in every run</summary>",
              _html_table(["key", *names], [[k, *values[k]] for k in equal]), "</details>"]
    for fig in figures:
        data = base64.b64encode(fig.png).decode()
        parts.append(f'<figure><h2>{html.escape(fig.title)}</h2><img class="plot" alt="{html.escape(fig.title)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{html.escape(fig.caption)}</figcaption></figure>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Metazoo report</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def report_paths(output: str | Path) -> tuple[Path, Path]:
    """(HTML, Markdown) paths for ``--output``: ``X.md`` gives ``X.html`` beside it, anything else is the HTML file
    with the Markdown at the same name with ``.md``. An existing directory is a ValueError (name a file in it)."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"--output {output} is a directory; name the HTML file, e.g. {output / 'report.html'}")
    if output.suffix.lower() == ".md":
        return output.with_suffix(".html"), output
    return output, output.with_suffix(".md")


def write_report(run_paths: list[str | Path], output: str | Path = "report.html") -> tuple[Path, Path]:
    """Write the HTML report and the Markdown summary beside it (:func:`report_paths`); returns both paths."""
    output, markdown = report_paths(output)  # before reading the runs: a bad --output fails at once
    runs = [load_run(p) for p in run_paths]
    pairs = paired_comparisons(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, render_html(runs, pairs, build_figures(runs, pairs)))
    atomic_write_text(markdown, render_markdown(runs, pairs, output.name))
    return output, markdown


# -- W&B -------------------------------------------------------------------------------------------------------
def wandb_run(run: Run) -> tuple[str, str] | None:
    """``(project, run id)`` of a run logged with ``zoo.WandbLogger`` (its run directory's name ends with the id:
    :func:`zoo.cli.runs.run_label`)."""
    logger = flatten(run.config)
    if logger.get("trainer.logger.class_path") != "zoo.WandbLogger":
        return None
    return str(logger.get("trainer.logger.init_args.project", "metazoo")), run_id_of(run.path.name)


def wandb_report(runs: list[Run], entity: str, title: str = "Metazoo report"):
    """The W&B Report of ``runs`` (built, not saved): the same panels as the HTML report.

    A Markdown block carries what only the local files hold (test accuracy +- CI, paired differences, config
    differences); a panel grid over exactly these runs (filtered by run id) holds the config comparer, learning
    curves, test accuracy, the per-episode tables and the episode gallery pictures. Raises ValueError naming the
    runs that were not logged to W&B.
    """
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    ids = [wandb_run(r) for r in runs]
    missing = [str(r.path) for r, i in zip(runs, ids) if i is None]
    if missing:
        raise ValueError(f"not W&B runs (trainer.logger is not zoo.WandbLogger): {', '.join(missing)}")
    projects = sorted({p for p, _ in ids})
    if len(projects) != 1:
        raise ValueError(f"a W&B report covers one project; these runs span {projects}")
    project = projects[0]
    pairs = paired_comparisons(runs)
    differing, _, values = config_table(runs)
    summary = "\n\n".join([
        markdown_table(OVERVIEW_HEADER, _overview_rows(runs)),
        markdown_table(["A", "B", "A − B", "shared episodes / reason"], _pair_rows(pairs)) if pairs else "",
        markdown_table(["key", *[r.name for r in runs]], [[k, *values[k]] for k in differing]) if differing else ""])
    curves = curve_keys(runs) or [("train/loss_epoch", "epoch"), ("val/acc", "epoch")]
    panels = [wr.RunComparer(diff_only="split"),
              *[wr.LinePlot(title=k, x="epoch" if x == "epoch" else "Step", y=[k]) for k, x in curves],
              wr.BarPlot(title="test accuracy", metrics=["test/acc"]),
              wr.WeavePanelSummaryTable(table_name=WANDB_EPISODE_TABLE),
              wr.MediaBrowser(title="test episode", media_keys=[WANDB_GALLERY])]
    if any(r.last("test/regret") is not None for r in runs):
        panels.append(wr.BarPlot(title="NAP regret", metrics=[k for _, k in REGRET_KEYS]))
    runset = wr.Runset(entity=entity, project=project, name="runs",
                       filters=ws.And(ws.Metric("ID").isin([i for _, i in ids])))
    return wr.Report(entity=entity, project=project, title=title,
                     description=f"{len(runs)} run(s): " + ", ".join(r.name for r in runs),
                     blocks=[wr.H1(title), wr.MarkdownBlock(text=summary),
                             wr.PanelGrid(runsets=[runset], panels=panels)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (each holds config.yaml, test_episodes.csv, ...)")
    parser.add_argument("--output", default="report.html",
                        help="the HTML file, the Markdown going beside it (X.md: the Markdown, with X.html beside)")
    parser.add_argument("--entity", default=None, help="W&B entity of the online report (needed with --publish)")
    parser.add_argument("--title", default="Metazoo report")
    parser.add_argument("--publish", action="store_true",
                        help="also save a W&B Report of the runs (online: needs credentials and --entity)")
    args = parser.parse_args(argv)
    try:
        html_path, md_path = write_report(args.runs, args.output)
    except (FileNotFoundError, ValueError) as err:
        print(f"zoo report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {html_path} and {md_path}")
    if not args.publish:
        return 0
    from zoo.cli.wandb_logger import wandb_credentials_configured

    if not args.entity or not wandb_credentials_configured():
        print("zoo report --publish: needs --entity and W&B credentials (WANDB_API_KEY or `wandb login`); "
              "the offline report was written", file=sys.stderr)
        return 2
    try:
        report = wandb_report([load_run(p) for p in args.runs], args.entity, args.title)
    except ValueError as err:
        print(f"zoo report --publish: {err}", file=sys.stderr)
        return 2
    report.save()
    print(f"W&B report: {report.url}")
    return 0
