"""Omniglot shipped with the package (datamodules.images.omniglot_small): the 20 one-shot runs of Lake et al. (2015)
pair the right images, are scored as the paper scores them, and `zoo fit` / `zoo test` run from the shipped files."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch
from support import ROOT, zoo_env

from safefiles import ChecksumError
from datamodules.images import OmniglotSmallDataModule
from datamodules.images.omniglot_small import (SHIPPED, SHIPPED_DIR, extract_shipped, read_run_pairs,
                                               runs_error_rate)
from datamodules.images.source import decode_image


@pytest.fixture(scope="module")
def dm():
    module = OmniglotSmallDataModule(n_way=20, k_shot=1, q_query=5, cache=False)
    module.setup("test")
    return module


def test_the_shipped_files_are_the_papers_and_carry_their_licence():
    assert {p.name for p in SHIPPED_DIR.iterdir()} >= {*SHIPPED, "LICENSE", "README.md"}
    assert "Brenden Lake" in (SHIPPED_DIR / "LICENSE").read_text()


def test_run01_pairs_as_its_class_labels_file_says(dm):
    """By hand from all_runs.zip's run01/class_labels.txt: 'run01/test/item01.png run01/training/class08.png' and
    'run01/test/item03.png run01/training/class02.png'. Support j is training/class{j+1}; query j is its test item."""
    with zipfile.ZipFile(SHIPPED_DIR / "all_runs.zip") as zf:
        lines = zf.read("run01/class_labels.txt").decode().splitlines()
    assert lines[0] == "run01/test/item01.png run01/training/class08.png"
    assert lines[2] == "run01/test/item03.png run01/training/class02.png"
    runs = dm.dataset("test")
    items, classes = runs.draw(0, 0)
    files = [dm.sources["test"].files[int(i)] for i in items]
    support, query = files[:20], files[20:]
    assert [f.split("/")[-2:] for f in support] == [["training", f"class{j:02d}.png"] for j in range(1, 21)]
    assert query[7].endswith("run01/test/item01.png") and query[1].endswith("run01/test/item03.png")
    # the pixels too: query 7 of episode 0 is item01 decoded (inverted, 28x28), support 7 is class08
    episode = runs[(0, 0)]
    assert episode.n_way == 20 and episode.k_shot == 1 and episode.q_query == 1
    assert torch.equal(episode.query_y, torch.arange(20)) and torch.equal(episode.support_y, torch.arange(20))
    raw = decode_image(query[7], 1, 28, invert=True)
    assert torch.equal(dm.sources["test"].load(int(items[27])), raw)
    assert torch.equal(dm.sources["test"].load(int(items[7])), decode_image(support[7], 1, 28, invert=True))


def test_every_run_pairs_each_test_item_with_its_training_image(dm):
    runs = dm.dataset("test")
    base = extract_shipped()
    for r in range(20):
        run_dir = base / "runs" / f"run{r + 1:02d}"
        expected = {str(run_dir / test): str(run_dir / train) for test, train in read_run_pairs(run_dir)}
        items, _ = runs.draw(0, r)
        files = [dm.sources["test"].files[int(i)] for i in items]
        assert {q: s for s, q in zip(files[:20], files[20:])} == expected
    with pytest.raises(IndexError, match="0..19"):
        runs.draw(0, 20)


def test_the_split_is_fixed_class_disjoint_and_rotates_only_training():
    module = OmniglotSmallDataModule(rotations=True, n_way=20, k_shot=1, q_query=5, cache=False)
    module.setup("fit")
    names = {s: {module.sources[s].class_names[int(c)] for c in module.sources[s].labels.unique()}
             for s in ("train", "val")}
    alphabets = {s: {n.split("/")[0] for n in names[s]} for s in names}
    assert alphabets["val"] == {"Sanskrit", "Tagalog"}
    assert alphabets["train"] == {"Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)", "Korean", "Latin"}
    # Greek and Latin, in both zips, count once: 183 + 59 = 242 characters of 20 drawings
    assert len(names["train"]) == 4 * 183 and len(names["val"]) == 59
    assert len(module.sources["train"]) == 4 * 183 * 20 and len(module.sources["val"]) == 59 * 20
    assert all(n.rsplit("/", 1)[1] in ("rot000", "rot090", "rot180", "rot270") for n in names["train"])
    assert not any("/rot" in n for n in names["val"])
    labels = [set(module.sources[s].labels.tolist()) for s in ("train", "val", "test")]
    assert not (labels[0] & labels[1] or labels[0] & labels[2] or labels[1] & labels[2])


def test_the_runs_are_scored_as_the_paper_scores_them():
    # 10 runs all right and 10 with 2 of 20 wrong: 20 errors of 400 items = 5 %; interval over the 20 runs:
    # errors 0 (x10), 0.1 (x10), sample std sqrt(20 * 0.05^2 / 19), t(0.975, 19) = 2.093024
    s = runs_error_rate([1.0] * 10 + [0.9] * 10)
    assert s["error_rate"] == pytest.approx(5.0)
    assert s["error_ci95"] == pytest.approx(100 * 2.093024 * math.sqrt(20 * 0.05 ** 2 / 19) / math.sqrt(20), rel=1e-4)
    with pytest.raises(ValueError, match="20 per-run"):
        runs_error_rate([1.0] * 19)


def test_bad_files_and_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="test_episodes must be 20"):
        OmniglotSmallDataModule(test_episodes=1000)
    source = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR, source)
    with open(source / "all_runs.zip", "ab") as f:
        f.write(b"x")
    with pytest.raises(ChecksumError, match="all_runs.zip has sha256"):
        extract_shipped(source, tmp_path / "cache")
    run = tmp_path / "run01"
    run.mkdir()
    (run / "class_labels.txt").write_text("run01/test/item01.png run01/training/class08.png\nrun01/item02.png\n")
    with pytest.raises(ValueError, match=r"class_labels.txt:2: expected"):
        read_run_pairs(run)


def test_zoo_fit_trains_from_the_shipped_files_and_zoo_test_reports_the_error_rate(tmp_path, monkeypatch):
    """No root, no download: a fresh cache (METAZOO_DATA) is filled from the package's own zips; `zoo test` of the
    best checkpoint in a fresh process prints the paper's score, which agrees with the accuracy over the runs."""
    from zoo.cli.commands import main

    monkeypatch.setenv("METAZOO_DATA", str(tmp_path / "data"))
    config = str(ROOT / "configs" / "protonet" / "omniglot-small.yaml")
    tiny = ["--trainer.max_epochs=1", "--data.train_episodes=2", "--data.val_episodes=2", "--data.rotations=false",
            "--data.train_n_way=20", "--trainer.enable_progress_bar=false"]

    def logger(path):
        return ["--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={path}"]

    main(["fit", "--config", config, *logger(tmp_path / "fit"), *tiny, "--test_after_fit=false"])
    assert (tmp_path / "data" / "omniglot-small" / "v1" / "runs" / "run20" / "class_labels.txt").is_file()
    ckpt = next((tmp_path / "fit").rglob("best-*.ckpt"))
    env = zoo_env(tmp_path)
    env["METAZOO_DATA"] = str(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "zoo", "test", "--config", config, *logger(tmp_path / "test"), *tiny,
                           "--ckpt_path", str(ckpt)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Omniglot one-shot runs: error rate" in out and "over 400 test items" in out and "over 20 runs" in out
    error = float(out.split("error rate ")[1].split(" %")[0])
    acc = float(out.split("test acc ")[1].split(" +-")[0])
    assert error == pytest.approx(100 - acc, abs=0.051)
    assert "Lake, Salakhutdinov & Tenenbaum" in out  # the data source goes with the number


def test_the_benchmark_pairs_its_claims_by_seed_and_renders_beside_the_published_figures(tmp_path, monkeypatch):
    """benchmarks/omniglot_runs.py's bookkeeping with the training replaced by fixed per-run accuracies."""
    import json

    from test_results import load_benchmark_module

    bench = load_benchmark_module("omniglot_runs")
    report = load_benchmark_module("report")

    def fake_run(key, seed, overrides, save_dir):
        per_run = [{"protonet-ce": 0.8, "maml": 0.7}[key] + 0.01 * seed] * 20
        return {"seed": seed, **runs_error_rate(per_run), "per_run_acc": per_run, "best_val_acc": 0.5,
                "selected_epoch": 7, "epochs": 8, "train_seconds": 60.0, "val_curve": [],
                "budget_stopped": True}, None

    def fake_write(name, payload):
        (tmp_path / f"{name}.json").write_text(json.dumps(payload))
        return tmp_path / f"{name}.json"

    monkeypatch.setattr(bench, "run_method", fake_run)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "write_results", fake_write)
    bench.main(["--methods", "protonet-ce", "--no-register"])
    bench.main(["--methods", "maml", "--no-register", "--seeds", "0", "1", "2", "3"])  # merged with the first
    bench.main(["--methods", "maml", "--no-register", "--seeds", "4", "5"])  # seeds added alike, seed 4 re-run
    data = json.loads((tmp_path / "omniglot_runs.json").read_text())
    assert list(data["methods"]) == ["protonet-ce", "maml"]
    assert [r["seed"] for r in data["methods"]["maml"]["runs"]] == [0, 1, 2, 3, 4, 5]
    assert data["methods"]["maml"]["command"].count("--seeds") == 2
    ce = data["methods"]["protonet-ce"]
    # seeds 0..4: accuracy 0.80..0.84 on every run, so 18 % error averaged over seeds, 0 width over runs
    assert ce["error_rate"] == pytest.approx(18.0) and ce["error_ci95_runs"] == pytest.approx(0.0, abs=1e-9)
    assert ce["budget_stopped_seeds"] == 5 and ce["selected_epochs"] == [7] * 5
    (c,) = data["claims"]
    assert c["id"] == "maml-vs-protonet-omniglot-runs" and c["diff"] == pytest.approx(-0.1)
    assert (c["seeds"], c["unit"], c["items"], c["holds"]) == (5, "seeds", 100, False)  # seed 5 has no CE pair
    block = report.omniglot_runs({**data, "machine": {}})
    assert "| people (Lake et al. 2015) | 30 background alphabets | 4.5 |" in block
    assert "`maml-vs-protonet-omniglot-runs`" in block and "18.0 ± 0.0" in block and "Lake, Salakhutdinov" in block
