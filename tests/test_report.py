"""`zoo compare` and `zoo report` on two real (tiny) runs, the HTML checked in a headless browser."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from support import ROOT
from zoo.cli.commands import main
from zoo.training.metrics import paired_difference_ci95
from zoo.cli.report import build_figures, paired_comparisons, render_html, wandb_report, write_report
from zoo.cli.runs import Run, load_run

GLYPHS = str(ROOT / "configs/protonet/glyphs.yaml")
TINY = ["--config", str(ROOT / "configs/trainer/debug.yaml"), "--trainer.enable_progress_bar=false",
        "--trainer.limit_train_batches=3", "--data.train_n_way=5", "--trainer.limit_val_batches=2",
        "--trainer.log_every_n_steps=1", "--data.val_episodes=2", "--data.test_episodes=20", "--trainer.limit_test_batches=null",
        "--trainer.logger.init_args.mode=disabled"]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `make test` installs it


@pytest.fixture(scope="module")
def two_runs(glyphs_data, tmp_path_factory) -> list[Path]:
    """Two runs tested on the same 20 episodes, differing in the distance (one config key); W&B logger disabled
    (its run directories and metrics.csv mirror are written, nothing to sync)."""
    save_dir = tmp_path_factory.mktemp("runs")
    main(["fit", "--config", GLYPHS, *TINY, f"--trainer.logger.init_args.save_dir={save_dir}"])
    main(["fit", "--config", GLYPHS, *TINY, f"--trainer.logger.init_args.save_dir={save_dir}",
          "--model.init_args.distance=cosine", "--trainer.logger.init_args.name=cosine"])
    runs = sorted((save_dir / "metazoo").iterdir(), key=lambda p: (p / "config.yaml").stat().st_mtime)
    assert len(runs) == 2
    return runs


def accuracies(run: Path) -> list[float]:
    with open(run / "test_episodes.csv") as f:
        return [float(r["acc"]) for r in sorted(csv.DictReader(f), key=lambda r: int(r["episode"]))]


def test_every_run_records_its_episode_set_and_a_metrics_csv(two_runs):
    a, b = (json.loads((r / "test_episodes.json").read_text()) for r in two_runs)
    assert a == b and a["episodes"] == 20 and a["dataset"] == "Glyphs" and len(a["hash"]) == 64
    run = load_run(two_runs[0])
    assert run.curve("train/loss_step")[1] and run.last("test/acc") is not None  # WandbLogger's CSV mirror


def test_run_directories_and_labels_carry_group_and_name(two_runs, capsys):
    """Issue 24 item 8: ``<group>-<name>-<id>`` (the config's group protonet-glyphs-5w1s, the second run named
    ``cosine`` on the command line), in the directory, ``zoo compare`` and the report's labels."""
    first, second = two_runs
    assert re.fullmatch(r"protonet-glyphs-5w1s-[a-z0-9]+", first.name), first.name
    assert re.fullmatch(r"protonet-glyphs-5w1s-cosine-[a-z0-9]+", second.name), second.name
    assert load_run(second).name == second.name
    main(["compare", str(first), str(second)])
    out = capsys.readouterr().out
    assert f"A = {first.name}: " in out and f"B = {second.name}: " in out
    # a run directory from before the labels (the bare id) reads with the same label
    assert Run(path=Path("runs/metazoo/abc123"), config=load_run(second).config).name == \
        "protonet-glyphs-5w1s-cosine-abc123"


def test_compare_prints_the_paired_difference(two_runs, capsys):
    main(["compare", str(two_runs[0]), str(two_runs[1])])
    out = capsys.readouterr().out
    diff, ci = paired_difference_ci95(accuracies(two_runs[0]), accuracies(two_runs[1]))
    assert f"A - B = {100 * diff:+.2f} +- {100 * ci:.2f} points (paired, 95% CI, 20 shared test episodes)" in out


def test_compare_refuses_runs_tested_on_different_episodes(two_runs, tmp_path, capsys):
    other = shutil.copytree(two_runs[1], tmp_path / "other")
    record = json.loads((other / "test_episodes.json").read_text())
    (other / "test_episodes.json").write_text(json.dumps({**record, "seed": 1, "hash": "0" * 64}))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(two_runs[0]), str(other)])
    assert exit_info.value.code == 2
    assert "different episode sets: seed: 0 vs 1" in capsys.readouterr().err

    (other / "test_episodes.json").unlink()  # a run from before the hash was recorded proves nothing
    with pytest.raises(SystemExit):
        main(["compare", str(two_runs[0]), str(other)])
    assert "no test_episodes.json" in capsys.readouterr().err


def test_compare_names_a_directory_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", str(tmp_path), str(tmp_path)])
    assert f"{tmp_path}: no resolved config" in capsys.readouterr().err


@pytest.fixture(scope="module")
def report(two_runs, tmp_path_factory) -> tuple[Path, Path]:
    return write_report(two_runs, tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_self_contained_and_summarised_in_markdown(report):
    html_path, md_path = report
    text = html_path.read_text()
    assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched
    assert text.count('src="data:image/png;base64,') == 6  # curves, accuracy, difference, histogram, 2 galleries
    assert '<tr class="diff"><td>model.init_args.distance</td><td>euclidean</td><td>cosine</td></tr>' in text
    assert "per epoch" in text and "shaded: the 95% interval over the validation episodes" in text  # item 9
    md = md_path.read_text()
    assert md_path == html_path.with_suffix(".md")
    assert "| model.init_args.distance | euclidean | cosine |" in md and "A − B" in md


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make test` installs it)")
def test_report_renders_in_a_headless_browser(report):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report[0].resolve().as_uri())
        sizes = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => [i.complete, i.naturalWidth, "
                                          "i.getBoundingClientRect().width, i.getBoundingClientRect().height])")
        browser.close()
    assert errors == []
    assert len(sizes) == 6
    assert all(complete and natural > 0 and w > 0 and h > 0 for complete, natural, w, h in sizes), sizes


def test_wandb_report_object_holds_the_panels_without_network(two_runs, monkeypatch):
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces.reports.v2 import interface

    def no_network():
        raise AssertionError("building the report must not call the W&B API")

    monkeypatch.setattr(interface, "_get_api", no_network)
    report = wandb_report([load_run(r) for r in two_runs], entity="someone")
    assert (report.entity, report.project) == ("someone", "metazoo")
    h1, summary, grid = report.blocks
    assert isinstance(h1, wr.H1) and isinstance(summary, wr.MarkdownBlock) and isinstance(grid, wr.PanelGrid)
    assert f"| {two_runs[1].name} |" in summary.text and "model.init_args.distance" in summary.text
    kinds = [type(p).__name__ for p in grid.panels]
    assert kinds[0] == "RunComparer" and {"LinePlot", "BarPlot", "WeavePanelSummaryTable", "MediaBrowser"} <= set(kinds)
    lines = {p.y[0] for p in grid.panels if isinstance(p, wr.LinePlot)}
    assert {"train/loss_epoch", "val/acc"} <= lines
    assert [p.table_name for p in grid.panels if isinstance(p, wr.WeavePanelSummaryTable)] == ["test/episode_table"]
    (runset,) = grid.runsets
    ids = [r.name.rsplit("-", 1)[-1] for r in two_runs]  # the W&B id ends the directory's name
    assert runset.entity == "someone" and runset.filters == f"Metric(\"ID\") in {ids!r}"


def test_publish_without_credentials_says_so(two_runs, tmp_path, monkeypatch, capsys):
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(two_runs[0]), "--output", str(tmp_path / "r.html"), "--entity", "x", "--publish"])
    assert exit_info.value.code == 2
    assert "needs --entity and W&B credentials" in capsys.readouterr().err
    assert (tmp_path / "r.html").is_file()  # the offline report is still written


def test_nap_runs_get_a_regret_curve_and_no_episode_panels():
    """NAP logs regret, not per-episode accuracy: its report has the regret figure and no accuracy figures."""
    runs = [Run(path=Path(f"runs/metazoo/nap{i}"), config={"model": {"init_args": {"eval_budget": 50}}},
                metrics=[{"step": 0.0, "val/regret": 0.4}, {"step": 9.0, "test/regret@10": 0.3 - i / 10,
                                                             "test/regret@25": 0.1, "test/regret": 0.05}])
            for i in range(2)]
    pairs = paired_comparisons(runs)
    assert all("no test_episodes.csv" in reason for _, _, reason in pairs)
    figures = build_figures(runs, pairs)
    assert [f.title for f in figures] == ["Learning curves", "NAP regret"]
    assert all(f.png.startswith(b"\x89PNG") for f in figures)
    assert "not comparable" in render_html(runs, pairs, figures)


def test_training_curves_are_per_epoch_with_a_band_on_validation():
    """Issue 24 item 9: train/loss_epoch (not the one-point loss_step curve of a short run) against the epoch, and
    the validation accuracy with its 95% band where the run logged val/acc_ci95."""
    from zoo.cli.report import curve_keys, learning_curves

    rows = [{"step": 4.0, "epoch": 0.0, "train/loss_step": 1.5}, {"step": 9.0, "epoch": 0.0, "train/loss_epoch": 1.4,
                                                                   "val/acc": 0.5, "val/acc_ci95": 0.05},
            {"step": 19.0, "epoch": 1.0, "train/loss_epoch": 1.1, "val/acc": 0.6, "val/acc_ci95": 0.04}]
    run = Run(path=Path("runs/metazoo/abc123"), config={}, metrics=rows)
    assert curve_keys([run]) == [("train/loss_epoch", "epoch"), ("val/acc", "epoch")]
    assert run.curve("train/loss_epoch", "epoch") == ([0.0, 1.0], [1.4, 1.1])
    figure = learning_curves([run])
    assert "shaded: the 95% interval" in figure.caption and figure.png.startswith(b"\x89PNG")
    steps_only = Run(path=Path("runs/csv/version_0"), config={}, metrics=[{"step": 0.0, "train/loss_step": 2.0}])
    assert curve_keys([steps_only]) == [("train/loss_step", "step")]
    assert "shaded" not in learning_curves([steps_only]).caption


def test_gallery_names_the_classes_shows_every_query_and_its_prediction():
    import torch

    from callbacks.episode_gallery import episode_figure

    support_x, support_y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    query_y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 0, 2, 1, 1, 1, 2, 0, 2])  # two wrong: query 2 (as row 3), query 7 (as row 1)
    fig = episode_figure(support_x, support_y, torch.rand(9, 1, 8, 8), query_y, pred,
                         class_names=["U+0041 LATIN CAPITAL LETTER A", "B", "C"])
    axes = fig.axes
    assert [axes[c * 4].get_ylabel() for c in range(3)] == ["1 U+0041 LATIN CAPITAL LE…", "2 B", "3 C"]  # 23 characters + …
    captions = [ax.get_xlabel() for ax in axes if ax.get_xlabel()]
    assert captions == ["-> 1", "-> 1", "-> 3", "-> 2", "-> 2", "-> 2", "-> 3", "-> 1", "-> 3"]  # all 9 queries
    assert "all 9 queries" in axes[1].get_title(loc="left")
    few = episode_figure(support_x, support_y, torch.rand(9, 1, 8, 8), query_y, pred, max_queries=2)
    assert "2 of 3 queries per class shown" in few.axes[1].get_title(loc="left")
    assert few.axes[0].get_ylabel() == "1 class 0"
