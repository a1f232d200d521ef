"""Fault injection: hostile or careless input gets a clear, named error (or warning) and never runs code or loses
results (issues 10 and 23). One test per defect, each failing on the code before the fix. Runs: checkpoints,
predictions, signals, non-finite losses, failed runs (this file); paths, caches, readers, reports, imports:
``test_faults_inputs.py``.

Fault cases that live beside the code they exercise (not repeated here): flipped weights byte
(``test_pretrained.py::test_checksum_mismatch_is_a_clear_error``), corrupt or truncated image files
(``test_images.py``, the ``content`` parametrisation), bad image folders and split files
(``test_images.py::test_image_folder_bad_input``, ``test_split_csv_errors_name_file_and_line``,
``test_predict_bad_folders``), malformed text files (``test_text.py``), bad HPO-B files
(``test_nap.py::test_hpob_bad_files_give_clear_errors``), bad ask/tell input (``test_nap.py``), too few classes
(``test_episodes.py::test_too_few_classes_and_bad_arguments``), unknown config keys (``test_cli.py``).
"""

from __future__ import annotations

import builtins
import csv
import functools
import hashlib
import http.server
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from safefiles import data_root
from datamodules.images import ImageFolderDataModule
from support import ROOT, zoo_env
from zoo.cli.commands import main

GLYPHS = str(ROOT / "configs/protonet/glyphs.yaml")
TINY = ["--config", str(ROOT / "configs/trainer/debug.yaml"), "--trainer.enable_progress_bar=false",
        "--data.val_episodes=2", "--data.test_episodes=2", "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=2", "--test_after_fit=false"]


def csv_logger(tmp_path: Path) -> list[str]:
    return ["--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}"]


class Payload:
    """Unpickling this object creates ``marker``: proof that loading a checkpoint ran code from it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6", "payload": Payload(marker)}, path)
    return path


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1 (in a thread) -> (directory, base URL); downloads removed after."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    yield served, base
    server.shutdown()
    for f in served.iterdir():  # fetch() caches each URL under data_root(); leave nothing behind there
        key = hashlib.sha256(f"{base}/{f.name}".encode()).hexdigest()[:16]
        shutil.rmtree(data_root() / "downloads" / key, ignore_errors=True)


# -- checkpoints: one loader, weights_only=True, local or remote ---------------------------------------------------
def test_load_checkpoint_refuses_what_is_not_a_plain_checkpoint(tmp_path):
    from zoo.hub.checkpoint_io import UntrustedCheckpointError, load_checkpoint

    marker = tmp_path / "PWNED"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).bytes(2000))
    for path in (evil, noise):
        with pytest.raises(UntrustedCheckpointError, match=f"checkpoint {path} is not trusted") as info:
            load_checkpoint(path)
        assert "weights_only=False" not in str(info.value) and info.value.__cause__ is None
    assert not marker.exists()
    with pytest.raises(IsADirectoryError, match=f"checkpoint {tmp_path} is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.ckpt does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, good)
    assert torch.equal(load_checkpoint(good)["state_dict"]["w"], torch.ones(2))


@pytest.mark.parametrize("where", ["url", "file"])
@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_malicious_ckpt_path_runs_nothing_in_any_subcommand(subcommand, where, glyphs_data, http_dir, tmp_path):
    served, base = http_dir
    marker = tmp_path / "PWNED"
    name = f"evil-{subcommand}.ckpt"  # a name per test: torch.hub (Lightning's URL loader) caches by file name
    malicious_checkpoint(served / name, marker)
    location = f"{base}/{name}" if where == "url" else str(served / name)
    with pytest.raises(Exception) as info:
        main([subcommand, "--config", GLYPHS, *csv_logger(tmp_path), *TINY, "--ckpt_path", location])
    assert not marker.exists()  # nothing in the file ran
    assert location in str(info.value) and "is not trusted and was not loaded" in str(info.value)
    assert "weights_only=False" not in str(info.value)


def test_the_cli_trainer_reads_checkpoints_through_the_one_loader():
    from zoo.hub.checkpoint_io import SafeCheckpointIO
    from zoo.cli.lightning_cli import build_cli

    cli = build_cli(["--config", GLYPHS, "--trainer.logger=false"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, SafeCheckpointIO)


def test_nap_ckpt_goes_through_the_same_loader(tmp_path):
    from zoo.methods.bo import load_nap
    from zoo.methods.nap import NAPModule, NAPNetwork

    model = NAPModule(NAPNetwork(2, d_model=8, n_layers=1, n_heads=2, dim_feedforward=8))
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict(),
                "pytorch-lightning_version": "2.6.6"}, tmp_path / "nap.ckpt")
    loaded = load_nap(tmp_path / "nap.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    malicious_checkpoint(tmp_path / "evil.ckpt", tmp_path / "PWNED")
    with pytest.raises(Exception, match="evil.ckpt.* is not trusted"):
        load_nap(tmp_path / "evil.ckpt")
    assert not (tmp_path / "PWNED").exists()


# -- predictions are never lost --------------------------------------------------------------------------------
def glyph_folders(glyphs_data, root: Path, classes: int = 3, queries: int = 3) -> tuple[Path, Path, list[str]]:
    support, query, names = root / "support", root / "query", []
    query.mkdir(parents=True)
    for c in glyphs_data.split_classes("test")[:classes]:
        items = (glyphs_data.labels == c).nonzero()[0]
        (support / f"c{c}").mkdir(parents=True)
        for i in items[:2]:
            Image.fromarray(255 - glyphs_data.images[i, 0]).save(support / f"c{c}" / f"{i}.png")
        for i in items[2:2 + queries]:
            Image.fromarray(255 - glyphs_data.images[i, 0]).save(query / f"q{i}.png")
            names.append(f"q{i}.png")
    return support, query, names


def test_predict_writes_every_chunk_once_without_a_configured_writer(glyphs_data, tmp_path):
    support, query, names = glyph_folders(glyphs_data, tmp_path)  # 9 queries -> chunks of 4, 4, 1
    main(["predict", "--config", GLYPHS, *csv_logger(tmp_path / "runs"), f"--data.predict_support_dir={support}",
          f"--data.predict_query_dir={query}", "--data.predict_query_chunk", "4"])
    out = next((tmp_path / "runs").rglob("predictions.csv"))
    lines = out.read_text().splitlines()
    assert lines[0] == "file,prediction,probability" and lines.count(lines[0]) == 1
    assert sorted(Path(r["file"]).name for r in csv.DictReader(lines)) == sorted(names)
    assert out.stat().st_mode & 0o777 == 0o644
    assert not list(out.parent.glob(".predictions.csv.*"))  # no temporary file left behind


# -- fail before training --------------------------------------------------------------------------------------
def image_folder(root: Path, per_class: int = 3, mode: str = "L") -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in range(2):
            d = root / split / f"{split}_c{c}"
            d.mkdir(parents=True)
            for i in range(per_class):
                shape = (8, 8) if mode == "L" else (8, 8, 3)
                Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(d / f"{i}.png")
    return root


SETTING = dict(n_way=2, k_shot=1, q_query=2, image_size=8)


def test_a_broken_test_split_fails_at_fit_setup(tmp_path):
    root = image_folder(tmp_path / "few")
    for f in list((root / "test" / "test_c1").iterdir())[1:]:
        f.unlink()
    with pytest.raises(ValueError, match=r"\[test\].*'test_c1' has 1"):
        ImageFolderDataModule(str(root), **SETTING).setup("fit")
    root = image_folder(tmp_path / "corrupt")
    (root / "test" / "test_c0" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"\[test\].*test_c0/0.png"):
        ImageFolderDataModule(str(root), cache=True, **SETTING).setup("fit")


@pytest.mark.parametrize("arg, value", [("train_k_shot", 0), ("train_n_way", 0), ("train_q_query", 0),
                                        ("test_episodes", -5), ("val_episodes", 0), ("k_shot", -1)])
def test_a_count_that_is_not_positive_is_an_error_naming_it(arg, value, tmp_path):
    with pytest.raises(ValueError, match=f"ImageFolder: {arg} must be a positive integer, got {value}"):
        ImageFolderDataModule(str(tmp_path), **{arg: value})


def test_zoo_check_runs_the_checks_alone(glyphs_data, capsys):
    main(["check", "--config", GLYPHS])
    out = capsys.readouterr().out
    assert all(f"Glyphs [{s}]:" in out and out.count(": ok") == 3 for s in ("train", "val", "test"))
    with pytest.raises(ValueError, match="test_episodes must be a positive integer, got -5"):
        main(["check", "--config", GLYPHS, "--data.test_episodes=-5"])


# -- resume continues the run ----------------------------------------------------------------------------------
def test_resume_from_last_ckpt_continues_the_same_run_directory(glyphs_data, tmp_path):
    args = ["fit", "--config", GLYPHS, *csv_logger(tmp_path), *TINY, "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1"]
    main(args)
    first = next((tmp_path / "csv").iterdir())
    assert (first / "config.yaml").stat().st_mode & 0o777 == 0o644
    main([*args, "--trainer.max_epochs=2", "--ckpt_path", str(first / "checkpoints" / "last.ckpt")])
    assert [p.name for p in (tmp_path / "csv").iterdir()] == [first.name]
    epochs = {row["epoch"] for row in csv.DictReader(open(first / "metrics.csv")) if row.get("epoch")}
    assert epochs == {"0", "1"}  # both epochs' history in the one run


def test_resume_continues_the_same_wandb_run_id(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from callbacks.run_dir import continue_run
    from zoo.cli.wandb_logger import WandbLogger

    ckpt = tmp_path / "metazoo" / "abc123" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    logger = WandbLogger(project="metazoo", save_dir=str(tmp_path), mode="offline")
    trainer = SimpleNamespace(loggers=[logger], default_root_dir=str(tmp_path))
    assert continue_run(trainer, str(ckpt)) == ckpt.parent.parent
    assert logger.version == "abc123" and logger._wandb_init["resume"] == "allow"
    # A labelled directory (<group>-<name>-<id>, zoo.cli.runs.run_label): W&B resumes the id, the directory stays, even
    # when this command names the run differently.
    ckpt = tmp_path / "metazoo" / "glyphs-proto-def456" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    logger = WandbLogger(project="metazoo", name="renamed", save_dir=str(tmp_path), mode="offline")
    assert continue_run(SimpleNamespace(loggers=[logger], default_root_dir=str(tmp_path)), str(ckpt))
    assert logger._wandb_init["id"] == "def456" and logger.version == "glyphs-proto-def456"
    elsewhere = CSVLogger(str(tmp_path / "other"), name="csv")  # not where this run lives: a new run, with a warning
    with pytest.warns(UserWarning, match="continues in a new directory"):
        assert continue_run(SimpleNamespace(loggers=[elsewhere], default_root_dir="."), str(ckpt)) is None


# -- W&B keys and file modes ------------------------------------------------------------------------------------
def test_episode_table_and_episode_count_have_distinct_keys(tmp_path):
    from callbacks.episode_table import EpisodeTable
    from zoo.cli.wandb_logger import WandbLogger

    logged: dict = {}

    class RecordingWandb(WandbLogger):
        @property
        def experiment(self):
            return SimpleNamespace(log=logged.update, summary={})

    rows = [{"episode": 0, "acc": 1.0, "loss": 0.1}]
    count_key = "test/episodes"  # what zoo.training.episodic.EpisodicModule logs as the number of episodes
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, fast_dev_run=False, checkpoint_callback=None,
                              datamodule=None, log_dir=str(tmp_path), default_root_dir=str(tmp_path), loggers=[
                                  RecordingWandb(save_dir=str(tmp_path), mode="disabled")],
                              callback_metrics={"test/acc": torch.tensor(1.0), "test/acc_ci95": torch.tensor(0.0),
                                                count_key: torch.tensor(1.0)})
    EpisodeTable().on_test_end(trainer, SimpleNamespace(records={"test": rows}))
    assert logged and count_key not in logged
    assert (tmp_path / "test_episodes.csv").stat().st_mode & 0o777 == 0o644


# -- smaller items -------------------------------------------------------------------------------------------------
def test_missing_or_unreadable_registry_is_an_error_not_an_empty_list(tmp_path, monkeypatch):
    from zoo.hub import pretrained

    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "nowhere.yaml")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml does not exist"):
        pretrained.list_pretrained()
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    monkeypatch.setattr(pretrained, "REGISTRY", bad)
    with pytest.raises(ValueError, match="bad.yaml cannot be read"):
        pretrained.list_pretrained()


def test_colour_images_for_a_grayscale_model_are_named_in_a_warning(tmp_path, caplog):
    support = image_folder(tmp_path / "rgb", mode="RGB") / "train"
    dm = ImageFolderDataModule(str(tmp_path), channels=1, predict_support_dir=str(support),
                     predict_query_dir=str(support / "train_c0"), **SETTING)
    with caplog.at_level(logging.WARNING, logger="datamodules.images.source"):
        dm.predict_sources()
    assert "channels=1" in caplog.text and "train_c0/0.png" in caplog.text


def test_bo_initialisation_index_out_of_range_names_dataset_seed_and_index(tmp_path):
    from zoo.methods.bo import evaluate_hpob

    fixture = ROOT / "tests/fixtures/hpob"
    for f in fixture.glob("*.json"):
        shutil.copy(f, tmp_path)
    inits = json.loads((tmp_path / "bo-initializations.json").read_text())
    dataset = next(iter(inits["5860"]))
    inits["5860"][dataset]["test0"][0] = 10 ** 6
    (tmp_path / "bo-initializations.json").write_text(json.dumps(inits))
    with pytest.raises(IndexError, match=rf"dataset {dataset}, seed 'test0': initial index 1000000 is outside"):
        evaluate_hpob(None, tmp_path, ["5860"], seeds=["test0"], n_trials=1)


# -- signals: a killed run stops between batches, keeps what resumes, and exits non-zero (issue 23) ---------------
def start_zoo(args: list[str], tmp_path: Path) -> subprocess.Popen:
    # SIGINT back to its default: a shell starts background jobs with it ignored, and Python then keeps ignoring it
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], cwd=ROOT, env=zoo_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_beats(proc: subprocess.Popen, beats: Path, count: int, timeout: float = 120.0) -> None:
    """Wait until the ``probes.Heartbeat`` file has ``count`` lines (batches are running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if beats.is_file() and len(beats.read_text().splitlines()) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"zoo exited {proc.returncode} before {count} batches:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {count} batches in {timeout} s")


def heartbeat(path: Path, delay: float = 0.2) -> list[str]:
    return ["--trainer.callbacks+=probes.Heartbeat", f"--trainer.callbacks.path={path}",
            f"--trainer.callbacks.delay={delay}"]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signalled_fit_saves_a_resumable_checkpoint_and_exits_non_zero(signum, code, glyphs_data, tmp_path):
    beats = tmp_path / "beats"
    args = ["fit", "--config", GLYPHS, *csv_logger(tmp_path), *TINY, "--trainer.limit_train_batches=500",
            "--trainer.limit_val_batches=1", *heartbeat(beats)]
    proc = start_zoo(args, tmp_path)
    wait_for_beats(proc, beats, 3)
    proc.send_signal(signum)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, out[-3000:]
    run = next((tmp_path / "csv").iterdir())
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file(), out[-3000:]
    from zoo.hub.checkpoint_io import load_checkpoint

    stopped = load_checkpoint(last)["global_step"]
    assert 3 <= stopped < 500
    assert signal.Signals(signum).name in (run / "interrupted.txt").read_text()
    # continue the same run from it for two more steps
    again = tmp_path / "beats-resumed"
    resumed = subprocess.run([sys.executable, "-m", "zoo", *args[:-3], *heartbeat(again, delay=0),
                              f"--trainer.max_steps={stopped + 2}", "--ckpt_path", str(last)], cwd=ROOT,
                             env=zoo_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert [p.name for p in (tmp_path / "csv").iterdir()] == [run.name]
    assert again.read_text().split() == ["train", str(stopped + 1), "train", str(stopped + 2)]
    assert not (run / "interrupted.txt").exists()  # the run finished after all


def test_a_signalled_predict_stops_between_batches_and_leaves_no_predictions_file(glyphs_data, tmp_path):
    support, query, names = glyph_folders(glyphs_data, tmp_path / "images", classes=3, queries=10)
    beats = tmp_path / "beats"
    proc = start_zoo(["predict", "--config", GLYPHS, *csv_logger(tmp_path / "runs"), f"--data.predict_support_dir="
                      f"{support}", f"--data.predict_query_dir={query}", "--data.predict_query_chunk=1",
                      *heartbeat(beats, delay=0.3)], tmp_path)
    wait_for_beats(proc, beats, 2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-3000:]
    assert len(beats.read_text().splitlines()) < len(names)  # it stopped before the end
    assert not list((tmp_path / "runs").rglob("predictions*.csv")) and not list((tmp_path / "runs").rglob(".pred*"))


# -- a non-finite loss fails fast, or is skipped and shown -------------------------------------------------------
NAN_LOSS = ["--model.init_args.temperature=1e-300"]  # every logit is +-inf: every loss is NaN


def test_a_nan_loss_fails_fast_naming_the_step_and_terms(glyphs_data, tmp_path):
    from callbacks import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"at epoch 0, batch 0 \(global step 0\): train/loss=nan; no "
                                                 r"earlier step had a finite loss"):
        main(["fit", "--config", GLYPHS, *csv_logger(tmp_path), *TINY, *NAN_LOSS])
    run = next((tmp_path / "csv").iterdir())
    assert not (run / "checkpoints").exists()  # no "best" checkpoint of a diverged run
    assert "NonFiniteLossError" in (run / "failed.txt").read_text()


def test_the_nonfinite_message_names_the_last_finite_loss():
    from callbacks import NonFiniteLoss

    cb = NonFiniteLoss()
    trainer = SimpleNamespace(global_step=7, current_epoch=1)
    cb.on_train_batch_start(trainer, SimpleNamespace(), None, 3)
    cb.on_before_backward(trainer, SimpleNamespace(), torch.tensor(1.25))
    module = SimpleNamespace(step_terms={"train/loss": torch.tensor(float("inf")), "train/ce": torch.tensor(0.5),
                                         "train/kl": torch.tensor(float("nan"))})
    cb.on_train_batch_start(trainer, module, None, 4)
    module.step_terms.update({"train/loss": torch.tensor(float("inf")), "train/kl": torch.tensor(float("nan"))})
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 4 \(global step 7\): train/loss=inf, "
                                                 r"train/kl=nan; the last finite loss was 1.25 at global step 7"):
        cb.on_before_backward(trainer, module, torch.tensor(float("inf")))


def test_skipping_nonfinite_steps_leaves_the_weights_and_shows_nan(glyphs_data, tmp_path, capsys):
    from zoo.cli.lightning_cli import build_cli

    cli = build_cli(["fit", "--config", GLYPHS, *csv_logger(tmp_path), *TINY, *NAN_LOSS,
                     "--on_nonfinite_loss=skip"], run=False)
    before = {k: v.detach().clone() for k, v in cli.model.named_parameters()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # no parameter moved and the optimiser holds no state (BatchNorm's running statistics do move: not weights)
    assert all(torch.equal(before[k], v) for k, v in cli.model.named_parameters())
    assert not cli.trainer.optimizers[0].state
    assert "train loss nan (2 of 2 steps non-finite)" in capsys.readouterr().out
