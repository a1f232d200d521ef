"""The pretrained registry: every entry verifies and loads, the shipped ProtoNet checkpoints re-measure within
their recorded interval, and bad names or corrupted files give clear errors."""

from __future__ import annotations

import shutil

import lightning.pytorch as pl
import pytest
import yaml
from support import ROOT

import zoo
import zoo.hub.pretrained as pretrained
from zoo.cli.lightning_cli import build_cli

ENTRIES = zoo.list_pretrained()


def test_the_foundation_checkpoints_are_registered():
    assert {"protonet-conv4-glyphs-5w1s", "protonet-conv4-glyphs-5w5s"} <= set(ENTRIES)


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_complete_verified_and_loads(name):
    entry = pretrained.registry_entry(name)
    assert entry.config_path.is_file(), f"{name}: config {entry.config} is missing"
    assert entry.command and entry.setting and entry.metrics
    assert entry.weights_path.stat().st_size < 5 * 2**20 or entry.system not in ("protonet",)
    model = zoo.load_pretrained(name)
    assert isinstance(model, pl.LightningModule) and not model.training


@pytest.mark.parametrize("name", ENTRIES)
def test_no_entry_holds_a_path_of_the_machine_that_wrote_it(name):
    """An entry travels with the repository: an absolute path in it (the RAML entries once recorded
    /work/main/.data/retrieval/... as their index_dir) only works on the machine that trained it."""
    raw = pretrained._read_registry()[name]
    assert pretrained.machine_paths(raw) == []


def test_machine_paths_by_hand_and_register_refuses_them(tmp_path):
    found = pretrained.machine_paths({"model": {"init_args": {"index_dir": "/home/me/.cache/idx", "n": 3}},
                                      "overrides": ["--data.k_shot=1", "--data.corpus_path=/abs/passages.jsonl"],
                                      "notes": "68 passages/s, 1/3 of the runs, see ~/notes and C:\\data",
                                      "config": "configs/raml/wordnet.yaml"})
    assert found == ["model.init_args.index_dir: /home/me/.cache/idx",
                     "overrides[1]: /abs/passages.jsonl", "notes: ~/notes", "notes: C:\\data"]
    entry = pretrained.Entry(name="x", system="raml", weights="checkpoints/x.safetensors", sha256="0" * 64,
                             model={"class_path": "zoo.methods.raml.RAML", "init_args": {"index_dir": "/tmp/i"}},
                             config="configs/raml/wordnet.yaml", setting="s")
    with pytest.raises(ValueError, match=r"'x' holds absolute paths .*init_args.index_dir: /tmp/i"):
        pretrained.register(entry, tmp_path / "registry.yaml")
    assert not (tmp_path / "registry.yaml").exists()


GLYPHS_ENTRIES = [n for n in ENTRIES if pretrained.registry_entry(n).config.startswith("configs/protonet/glyphs")]
RE_MEASURE_EPISODES = 300


def test_the_susana_checkpoints_are_registered():
    assert {f"protonet-{loss}-conv4-glyphs-5w{k}s" for loss in ("prototriplet", "icnn") for k in (1, 5)} <= set(
        GLYPHS_ENTRIES)


@pytest.mark.timeout(600)  # 300 episodes: ~15 s on 2 idle cores, several times that when they are shared
@pytest.mark.parametrize("name", GLYPHS_ENTRIES)
def test_glyphs_checkpoints_re_measure_within_their_recorded_interval(name, glyphs_data, tmp_path):
    """Test the registry weights on the entry's own config. The first 300 of its 1,000 fixed test episodes are
    the same episodes (episodes are keyed by index), so their mean must fall within its own 95% interval of the
    recorded 1,000-episode mean; the full re-measurement is ``python benchmarks/protonet_glyphs.py --from-registry``."""
    entry = pretrained.registry_entry(name)
    cli = build_cli(["test", "--pretrained", name, "--config", str(ROOT / "configs/logger/csv.yaml"),
                     f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.enable_progress_bar=false",
                     f"--data.test_episodes={RE_MEASURE_EPISODES}"], run=False)
    pretrained.load_pretrained_weights(cli.model, name)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    metrics = cli.trainer.callback_metrics
    assert entry.metrics["test_episodes"] == 1000 and int(metrics["test/episodes"]) == RE_MEASURE_EPISODES
    assert abs(float(metrics["test/acc"]) - entry.metrics["test_acc"]) <= float(metrics["test/acc_ci95"])


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="protonet-conv4-glyphs-5w1s"):
        zoo.load_pretrained("protonet-conv9-glyphs")


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    name = "protonet-conv4-glyphs-5w1s"
    entry = pretrained.registry_entry(name)
    (tmp_path / "checkpoints").mkdir()
    copy = tmp_path / entry.weights
    shutil.copy(entry.weights_path, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    copy.write_bytes(data)
    registry = tmp_path / "checkpoints" / "registry.yaml"
    registry.write_text(yaml.safe_dump({name: {k: v for k, v in entry.__dict__.items() if k != "name"}}))
    monkeypatch.setattr(pretrained, "REGISTRY", registry)
    with pytest.raises(pretrained.ChecksumError, match="sha256"):
        zoo.load_pretrained(name)
    copy.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        zoo.load_pretrained(name)


def test_export_then_register_round_trip(tmp_path, monkeypatch):
    from zoo.nn.backbones import Conv4
    from zoo.methods.protonet import ProtoNet

    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "checkpoints" / "registry.yaml")
    model = ProtoNet(Conv4(1, 8, "avg", 28))
    sha = pretrained.export_weights(model, tmp_path / "checkpoints" / "tiny.safetensors")
    pretrained.register(pretrained.Entry(
        name="tiny", system="protonet", weights="checkpoints/tiny.safetensors", sha256=sha,
        model={"class_path": "zoo.ProtoNet",
               "init_args": {"backbone": {"class_path": "zoo.Conv4",
                                          "init_args": {"in_channels": 1, "hidden": 8, "pooling": "avg"}}}},
        config="configs/protonet/glyphs.yaml", setting="test"))
    assert pretrained.list_pretrained() == ["tiny"]
    loaded = zoo.load_pretrained("tiny")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert (a == b).all(), k


def test_weights_resolve_from_the_repository_then_metazoo_checkpoints_then_the_url(tmp_path, monkeypatch):
    entry = pretrained.registry_entry("protonet-conv4-glyphs-5w1s")
    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "repo" / "checkpoints" / "registry.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("METAZOO_CHECKPOINTS", str(elsewhere))
    with pytest.raises(FileNotFoundError, match="METAZOO_CHECKPOINTS") as err:
        pretrained.resolve_weights(entry)
    assert str(elsewhere / "protonet-conv4-glyphs-5w1s.safetensors") in str(err.value)  # every place looked in

    source = ROOT / entry.weights
    entry.url = source.as_uri()
    monkeypatch.setenv("METAZOO_DATA", str(tmp_path / "cache"))
    fetched = pretrained.resolve_weights(entry)
    assert fetched.is_relative_to(tmp_path / "cache") and fetched.read_bytes() == source.read_bytes()

    shutil.copy(source, elsewhere / source.name)
    assert pretrained.resolve_weights(entry) == elsewhere / source.name  # before the url
    (tmp_path / "repo" / "checkpoints").mkdir(parents=True)
    shutil.copy(source, tmp_path / "repo" / entry.weights)
    assert pretrained.resolve_weights(entry) == tmp_path / "repo" / entry.weights  # before the directory


def test_register_writes_a_url_only_when_there_is_one(tmp_path):
    path = tmp_path / "registry.yaml"
    entry = pretrained.registry_entry("protonet-conv4-glyphs-5w1s")
    pretrained.register(entry, path)
    entry.name, entry.url = "with-url", "https://example.org/w.safetensors"
    pretrained.register(entry, path)
    data = yaml.safe_load(path.read_text())
    assert "url" not in data["protonet-conv4-glyphs-5w1s"] and data["with-url"]["url"] == entry.url
    assert oct(path.stat().st_mode & 0o777) == "0o644"
