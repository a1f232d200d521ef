"""Progress lines for logs that are not a terminal: one per epoch, one at the end of a test."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import lightning.pytorch as pl
import torch

from callbacks.progress import EpochProgress, _batch_items, _clock
from datamodules.base import EpisodicDataModule
from datamodules.episodes import TensorSource
from support import ROOT
from zoo.nn.backbones import Conv4
from zoo.cli.lightning_cli import build_cli
from zoo.methods.protonet import ProtoNet


class Noise(EpisodicDataModule):
    """Ten classes of random 1x16x16 images per split: enough for a fit to run, not to learn."""

    def build_sources(self):
        g = torch.Generator().manual_seed(0)
        return {split: TensorSource(torch.randn(60, 1, 16, 16, generator=g), torch.arange(10).repeat_interleave(6))
                for split in ("train", "val", "test")}


def test_clock_and_batch_items():
    assert _clock(59.6) == "1:00" and _clock(3725) == "1:02:05"
    assert _batch_items({"x": torch.zeros(7, 3, 2), "y": torch.zeros(7, 3)}) == 7  # a batch of 7 BO tasks
    assert _batch_items(object()) == 1  # an episode


def test_the_metric_is_the_one_logged_with_a_ci():
    nap = SimpleNamespace(callback_metrics={"val/log10_regret": torch.tensor(-2.0), "val/regret": torch.tensor(0.01),
                                            "val/regret_ci95": torch.tensor(0.002), "train/loss": torch.tensor(1.0)})
    assert EpochProgress()._metric(nap, "val") == "val regret 0.0100 +- 0.0020"
    assert EpochProgress(metric="log10_regret")._metric(nap, "val") == "val log10_regret -2.0000"
    assert EpochProgress()._metric(nap, "test") is None


def test_one_result_format_percent_for_accuracy():
    """Issue 24 item 9: the test accuracy is printed one way (EpochProgress and EpisodeTable share it)."""
    from callbacks.progress import format_result

    assert format_result("test", "acc", 0.96597, 0.003049) == "test acc 96.60 +- 0.30 %"
    assert format_result("val", "nota_acc", 0.5) == "val nota_acc 50.00 %"
    assert format_result("val", "regret", 0.01, 0.002) == "val regret 0.0100 +- 0.0020"


def test_results_table_keeps_full_names_and_merges_intervals():
    """Instead of Lightning's table (raw fractions, long GPAM names cut to the terminal width): issue 24 item 9."""
    from callbacks.progress import results_table

    metrics = {"test/nota0.15/acc": 0.5, "test/nota0.15/acc_ci95": 0.0125, "test/nota0.15/nota_f1": 0.25,
               "test/episodes": 20.0, "perf/eval_episodes_per_s": 4.5, "val/acc": 0.9, "train/loss": 1.0}
    assert results_table(metrics, "test").splitlines() == [
        "test results (95% CI over episodes):",
        "  perf/eval_episodes_per_s  4.5000",
        "  test/episodes             20",
        "  test/nota0.15/acc         50.00 +- 1.25 %",
        "  test/nota0.15/nota_f1     0.2500"]
    assert results_table({"train/loss": 1.0}, "test") == ""


def test_one_line_per_epoch_and_one_at_test_end():
    pl.seed_everything(0)
    dm = Noise(n_way=3, k_shot=1, q_query=2, train_episodes=4, val_episodes=3, test_episodes=5)
    model = ProtoNet(Conv4(1, 4, "avg", 16))
    out = io.StringIO()
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[EpochProgress(stream=out)])
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    number, percent = r"\d+\.\d{4}", r"\d+\.\d{2}"
    for epoch, line in enumerate(lines[:2], 1):
        assert re.fullmatch(rf"epoch {epoch}/2 \| train loss {number} \| val acc {percent} \+- {percent} % \| "
                            r"\d+\.\d episodes/s \| elapsed \d+:\d\d \| remaining ~\d+:\d\d", line), line
    assert line.endswith("remaining ~0:00")  # after the last epoch nothing is left
    assert re.fullmatch(rf"test done \| test acc {percent} \+- {percent} % \| 5 episodes \| \d+:\d\d", lines[2]), lines[2]


def test_remaining_time_is_bounded_by_max_time():
    pl.seed_everything(0)
    dm = Noise(n_way=3, k_shot=1, q_query=2, train_episodes=2, val_episodes=2, test_episodes=2)
    out = io.StringIO()

    class StopAfterOneEpoch(pl.Callback):  # one epoch is enough to read the estimate
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    trainer = pl.Trainer(max_epochs=100000, max_time="00:00:10:00", limit_train_batches=1, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[EpochProgress(stream=out), StopAfterOneEpoch()])
    trainer.fit(ProtoNet(Conv4(1, 4, "avg", 16)), datamodule=dm)
    (line,) = out.getvalue().splitlines()
    minutes, seconds = re.search(r"remaining ~(\d+):(\d\d)$", line).groups()
    assert int(minutes) * 60 + int(seconds) <= 600  # not 99,999 epochs' worth


def test_cli_prints_lines_instead_of_the_bar_when_not_a_terminal():
    # pytest captures standard output, so it is not a terminal here, as in CI logs or under nohup
    args = ["--config", str(ROOT / "configs/protonet/glyphs.yaml"), "--trainer.logger=false"]
    trainer = build_cli(args, run=False).trainer
    assert sum(isinstance(c, EpochProgress) for c in trainer.callbacks) == 1
    assert trainer.progress_bar_callback is None
    bar = build_cli([*args, "--trainer.enable_progress_bar=true"], run=False).trainer
    assert not any(isinstance(c, EpochProgress) for c in bar.callbacks) and bar.progress_bar_callback is not None
