"""The `zoo` command end to end on the real shipped configs, shrunk to a few episodes."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from support import ROOT, zoo_env
from zoo.cli.commands import main

GLYPHS = str(ROOT / "configs/protonet/glyphs.yaml")
SMALL = ["--config", str(ROOT / "configs/trainer/debug.yaml"), "--trainer.enable_progress_bar=false",
         "--data.val_episodes=20", "--data.test_episodes=30", "--trainer.limit_test_batches=null"]


def csv_logger(tmp_path: Path) -> list[str]:
    return ["--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_fit_checkpoint_then_test_in_a_fresh_process(glyphs_data, tmp_path):
    main(["fit", "--config", GLYPHS, *csv_logger(tmp_path), *SMALL])
    run = next((tmp_path / "csv").iterdir())
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "config.yaml").is_file()
    hparams = torch.load(ckpt, weights_only=True)["hyper_parameters"]  # primitive hparams only
    assert hparams["_class_path"] == "zoo.ProtoNet"
    in_process = read_rows(run / "test_episodes.csv")
    assert len(in_process) == 30
    assert (run / "test_episode.png").stat().st_size > 1000  # EpisodeGallery's picture of a test episode

    out = tmp_path / "fresh"
    proc = subprocess.run([sys.executable, "-m", "zoo", "test", "--config", GLYPHS, *csv_logger(out), *SMALL,
                           "--ckpt_path", str(ckpt)], cwd=ROOT, env=zoo_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout + proc.stderr
    assert re.search(r"^test acc \d+\.\d\d \+- \d+\.\d\d % \(95% CI over 30 episodes\)", printed, re.MULTILINE), \
        printed[-2000:]
    assert "test/acc_ci95" not in printed  # Lightning's table of raw fractions: one accuracy format (issue 24 item 9)
    fresh = read_rows(next((out / "csv").iterdir()) / "test_episodes.csv")
    assert fresh == in_process  # same fixed episodes, same weights -> identical per-episode results


@pytest.mark.parametrize("loss", ["prototriplet", "icnn", "prototriplet-icnn"])
def test_each_loss_setting_round_trips_fit_checkpoint_test(loss, glyphs_data, tmp_path):
    tiny = ["--config", str(ROOT / f"configs/losses/{loss}.yaml"), *SMALL, "--trainer.limit_train_batches=3",
            "--data.test_episodes=10", "--trainer.limit_val_batches=5", "--test_after_fit=false"]
    main(["fit", "--config", GLYPHS, *csv_logger(tmp_path), *tiny])
    ckpt = next(tmp_path.glob("csv/*/checkpoints/best-*.ckpt"))
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["loss_terms"][0] == "cross"
    main(["test", "--config", GLYPHS, *csv_logger(tmp_path / "test"), *tiny, "--ckpt_path", str(ckpt)])
    assert len(read_rows(next(tmp_path.glob("test/csv/*/test_episodes.csv")))) == 10


def test_second_run_in_the_same_directory_does_not_crash(glyphs_data, tmp_path):
    args = ["fit", "--config", GLYPHS, *SMALL, "--test_after_fit=false", "--trainer.limit_val_batches=2",
            f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.logger.init_args.mode=offline"]
    main(args)
    main(args)
    configs = list(tmp_path.glob("metazoo/*/config.yaml"))
    assert len(configs) == 2  # one per run, each beside its own checkpoints/


def test_unknown_config_key_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", GLYPHS, "--model.init_args.no_such_option=1", "--print_config"])
    assert exit_info.value.code != 0
    assert "no_such_option" in capsys.readouterr().err


def test_predict_classifies_query_images_from_a_support_folder(glyphs_data, tmp_path):
    """`zoo predict`: labelled support folders + unlabelled queries -> predictions.csv (file, class, prob)."""
    from PIL import Image

    test_classes = glyphs_data.split_classes("test")[:3]
    support, query = tmp_path / "support", tmp_path / "query"
    truth = {}
    for c in test_classes:
        name = f"U{int(glyphs_data.codepoints[c]):04X}"
        items = (glyphs_data.labels == c).nonzero()[0]
        (support / name).mkdir(parents=True)
        for i in items[:5]:  # dark ink on white, as a user's own scans would be (the datamodule inverts them)
            Image.fromarray(255 - glyphs_data.images[i, 0]).save(support / name / f"{i}.png")
        for i in items[5:7]:
            query.mkdir(exist_ok=True)
            Image.fromarray(255 - glyphs_data.images[i, 0]).save(query / f"q{i}.png")
            truth[f"q{i}.png"] = name
    out = tmp_path / "predictions.csv"
    main(["predict", "--config", GLYPHS, *csv_logger(tmp_path), f"--data.predict_support_dir={support}",
          f"--data.predict_query_dir={query}", "--trainer.callbacks+=callbacks.PredictionWriter",
          f"--trainer.callbacks.output={out}"])
    rows = read_rows(out)
    assert sorted(Path(r["file"]).name for r in rows) == sorted(truth)
    assert all(r["prediction"] in {n for n in truth.values()} and 0 < float(r["probability"]) <= 1 for r in rows)


@pytest.mark.parametrize("loss", sorted((ROOT / "configs/losses").glob("*.yaml")), ids=lambda p: p.stem)
def test_loss_and_shot_configs_compose_with_a_dataset_config(loss, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "configs/protonet/miniimagenet-resnet12.yaml"), "--config", str(loss),
              "--config", str(ROOT / "configs/shots/5shot.yaml"), "--print_config"])
    out = capsys.readouterr().out
    import yaml

    config = yaml.safe_load(out)
    assert config["model"]["class_path"] == "zoo.ProtoNet"
    assert config["model"]["init_args"]["backbone"]["class_path"] == "zoo.ResNet12"
    assert config["model"]["init_args"]["loss_terms"] == yaml.safe_load(loss.read_text())["model"]["init_args"]["loss_terms"]
    assert (config["data"]["init_args"]["k_shot"], config["data"]["init_args"]["train_n_way"]) == (5, 20)


def test_a_misspelt_loss_term_is_an_error_not_a_silently_dropped_term():
    with pytest.raises((SystemExit, ValueError)):
        main(["fit", "--config", GLYPHS, "--model.init_args.loss_terms=[cross,fullicn]", "--trainer.fast_dev_run=true"])
