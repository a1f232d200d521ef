"""W&B without an account: the mode resolution, and an offline run that writes what `wandb sync` uploads."""

from __future__ import annotations

import pytest

from zoo.wandb_logger import WandbLogger, resolve_wandb_mode, wandb_credentials_configured


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
