"""W&B without an account: the mode resolution, and an offline run that writes what `wandb sync` uploads."""

from __future__ import annotations

import pytest

from zoo.cli.wandb_logger import WandbLogger, resolve_wandb_mode, wandb_credentials_configured


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_auto_is_offline_without_credentials_and_online_with_them(no_credentials, monkeypatch):
    assert not wandb_credentials_configured()
    assert resolve_wandb_mode("auto") == "offline"
    no_credentials.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    no_credentials.chmod(0o600)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's environment wins over credentials
    assert resolve_wandb_mode("auto") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # wandb's old name for offline
    assert resolve_wandb_mode("auto") == "offline"
    assert resolve_wandb_mode("online") == "online"  # an explicit mode wins over everything


def test_api_key_counts_as_credentials(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"


def test_offline_logger_writes_a_syncable_run_and_drops_log_model(no_credentials, tmp_path):
    with pytest.warns(UserWarning, match="log_model"):
        logger = WandbLogger(project="t", save_dir=str(tmp_path / "runs"), log_model=True)
    assert logger.mode == "offline"
    logger.log_metrics({"test/acc": 0.5})
    logger.experiment.finish()
    assert list((tmp_path / "runs" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_run_directory_is_named_group_name_id(no_credentials, tmp_path):
    """Issue 24 item 8: ``--trainer.logger.init_args.name`` and ``group`` name the run directory (where
    ModelCheckpoint puts ``checkpoints/``, and ``metrics.csv`` goes), not W&B's opaque id alone."""
    import lightning.pytorch as pl

    from callbacks.run_dir import run_dir

    logger = WandbLogger(project="t", name="proto ce", group="glyphs/5w1s", save_dir=str(tmp_path / "runs"))
    trainer = pl.Trainer(logger=logger, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    run_id = logger.experiment.id  # Lightning starts the experiment before the callbacks' setup, as here
    trainer.checkpoint_callback.setup(trainer, pl.LightningModule(), "fit")  # resolves <save_dir>/<project>/<version>
    assert logger.version == f"glyphs_5w1s-proto_ce-{run_id}"
    assert run_dir(trainer) == tmp_path / "runs" / "t" / f"glyphs_5w1s-proto_ce-{run_id}"
    logger.log_metrics({"val/acc": 0.5}, step=0)
    logger.save()
    assert (run_dir(trainer) / "metrics.csv").is_file()
    logger.experiment.finish()
    unnamed = WandbLogger(project="t", save_dir=str(tmp_path / "runs"))
    run_id = unnamed.experiment.id
    assert unnamed.version == run_id  # nothing to add: the id alone, as before
    unnamed.experiment.finish()
