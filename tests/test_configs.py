"""Configs: ``__base__`` composition (merge rules checked on tiny hand-written files), shipped config names, and
every config under configs/ parsing as ``--print_config`` parses it, with every ``class_path`` importable."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from support import ROOT, print_config

from zoo.cli.lightning_cli import expand_args, resolve_config_names
from zoo.cli.compose import base_files, expand_config_args, load_composed, merge
from zoo.hub.shipped import list_configs

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))  # globbed: configs added later are checked too
SYSTEM_CONFIG = ROOT / "configs" / "protonet" / "glyphs.yaml"  # what overlays (losses/, shots/, ...) are added to


def test_merge_mappings_recursively_and_replace_everything_else():
    earlier = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"class_path": "P", "init_args": {"p": 1, "q": 2}}}
    later = {"a": {"y": [3], "z": None}, "b": {"k": 1}, "c": {"init_args": {"q": 5}}}
    assert merge(earlier, later) == {"a": {"x": 1, "y": [3], "z": None}, "b": {"k": 1},
                                     "c": {"class_path": "P", "init_args": {"p": 1, "q": 5}}}
    assert earlier["a"] == {"x": 1, "y": [1, 2]}  # inputs untouched


def test_a_different_class_path_replaces_the_whole_mapping():
    earlier = {"logger": {"class_path": "W", "init_args": {"project": "p"}}}
    later = {"logger": {"class_path": "C", "init_args": {"save_dir": "s"}}}
    assert merge(earlier, later) == later


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bases_merge_in_order_then_the_file_on_top(tmp_path):
    write(tmp_path / "pieces/a.yaml", "trainer: {max_epochs: 1, devices: 1}\ncallbacks: [A, B]\n")
    write(tmp_path / "pieces/b.yaml", "__base__: a.yaml\ntrainer: {max_epochs: 2}\n")  # a base with a base
    config = write(tmp_path / "sys/c.yaml", "__base__: [../pieces/b.yaml]\ncallbacks: [C]\nseed: 3\n")
    assert load_composed(config) == {"trainer": {"max_epochs": 2, "devices": 1}, "callbacks": ["C"], "seed": 3}
    assert base_files(config) == [(tmp_path / "pieces" / n).resolve() for n in ("a.yaml", "b.yaml")]


@pytest.mark.parametrize("text, match", [
    ("__base__: [missing.yaml]\n", "names no file"),
    ("__base__: {a: 1}\n", "must be a list of paths"),
    ("- just a list\n", "expected a mapping"),
    ("__base__: [self.yaml]\n", "cycle"),
])
def test_bad_bases_are_errors_that_name_the_file(tmp_path, text, match):
    config = write(tmp_path / "self.yaml", text)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        load_composed(config)
    assert str(config) in str(err.value)


def test_expansion_replaces_composed_files_only_and_is_idempotent(tmp_path):
    plain = write(tmp_path / "plain.yaml", "trainer: {max_epochs: 1}\n")
    write(tmp_path / "base.yaml", "trainer: {devices: 1}\n")
    composed = write(tmp_path / "composed.yaml", "__base__: [base.yaml]\ntrainer: {max_epochs: 2}\n")
    args = ["fit", "--config", str(plain), f"--config={composed}", "--trainer.max_epochs=3", "-c", str(composed)]
    expanded = expand_config_args(args)
    assert expanded[:3] == args[:3] and expanded[4:6] == args[4:6]
    merged = {"trainer": {"devices": 1, "max_epochs": 2}}
    assert json.loads(expanded[3].removeprefix("--config=")) == merged == json.loads(expanded[6])
    assert expand_config_args(expanded) == expanded  # what a DDP child re-executing sys.argv does


def test_pretrained_expansion_is_idempotent_with_a_composed_config():
    args = ["test", "--pretrained", "protonet-conv4-glyphs-5w1s"]
    once = expand_args(args)
    assert once[1] == "--config" and "__base__" not in once[2] and json.loads(once[2])["trainer"]["callbacks"]
    assert expand_args(once) == once


def test_a_shipped_config_name_resolves_to_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any directory
    assert "protonet/glyphs" in list_configs()
    assert resolve_config_names(["fit", "--config", "protonet/glyphs"]) == ["fit", "--config", str(SYSTEM_CONFIG)]
    with pytest.raises(FileNotFoundError, match="did you mean protonet/glyphs"):  # one line, the closest names
        resolve_config_names(["fit", "--config=protonet/glyph"])


def test_a_path_inside_the_repository_resolves_from_any_directory(tmp_path, monkeypatch):
    """The README's ``--config configs/protonet/glyphs.yaml`` outside the repository: the shipped file; a file of
    that path in the working directory still wins, and a misspelt one is an error naming the closest configs."""
    monkeypatch.chdir(tmp_path)
    assert resolve_config_names(["fit", "-c", "configs/protonet/glyphs.yaml", "--config=configs/logger/csv.yaml"]) \
        == ["fit", "-c", str(SYSTEM_CONFIG), f"--config={ROOT / 'configs/logger/csv.yaml'}"]
    with pytest.raises(FileNotFoundError, match=r"configs/protonet/glyph\.yaml: .*did you mean protonet/glyphs"):
        resolve_config_names(["fit", "--config", "configs/protonet/glyph.yaml"])
    (tmp_path / "configs" / "protonet").mkdir(parents=True)
    (tmp_path / "configs" / "protonet" / "glyphs.yaml").write_text("trainer: {max_epochs: 1}\n")
    assert resolve_config_names(["fit", "--config", "configs/protonet/glyphs.yaml"])[2] == \
        "configs/protonet/glyphs.yaml"
    composed = json.dumps({"trainer": {"max_epochs": 1}})  # a config given as a JSON string is left alone
    assert resolve_config_names(["fit", "--config", composed])[2] == composed


def test_weights_references_resolve_from_any_directory(tmp_path, monkeypatch):
    """``init_from`` and every weights argument: a registry name (sha256-checked) or a path inside the repository,
    whatever the working directory (configs/nap/hartmann3.yaml's init_from failed outside the repository)."""
    from zoo.hub.pretrained import weights_file

    monkeypatch.chdir(tmp_path)
    shipped = ROOT / "checkpoints" / "nap-sl-hartmann3.safetensors"
    assert weights_file("nap-sl-hartmann3") == shipped
    assert weights_file("checkpoints/nap-sl-hartmann3.safetensors") == shipped
    elsewhere = tmp_path / "copies"  # an installed package: the weights only in $METAZOO_CHECKPOINTS
    elsewhere.mkdir()
    (elsewhere / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.setattr("zoo.hub.pretrained.ROOT", tmp_path / "package")
    monkeypatch.setattr("zoo.hub.pretrained.Entry.weights_path", property(lambda e: tmp_path / "package" / e.weights))
    monkeypatch.setenv("METAZOO_CHECKPOINTS", str(elsewhere))
    for reference in ("nap-sl-hartmann3", "checkpoints/nap-sl-hartmann3.safetensors"):
        assert weights_file(reference) == elsewhere / shipped.name
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "mine.safetensors"
    own.write_bytes(b"x")
    assert weights_file("mine.safetensors") == Path("mine.safetensors")  # the working directory's own file first
    with pytest.raises(FileNotFoundError, match="did you mean the registry name nap-sl-hartmann3"):
        weights_file("nap-sl-hartman3")


def test_nap_init_from_takes_a_registry_name_or_a_repository_path_from_any_directory(tmp_path, monkeypatch):
    """configs/nap/hartmann3.yaml's ``init_from`` (now ``nap-sl-hartmann3``; before, a path that only resolved
    from the repository root) loads the same weights either way."""
    import torch

    from zoo.methods.bo import load_nap

    monkeypatch.chdir(tmp_path)
    model = load_nap("nap-sl-hartmann3")
    expected = {k: v.clone() for k, v in model.net.state_dict().items()}
    for reference in ("nap-sl-hartmann3", "checkpoints/nap-sl-hartmann3.safetensors"):
        torch.nn.init.zeros_(next(model.net.parameters()))
        model.load_network_weights(reference)
        loaded = model.net.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in expected.items() if not k.startswith("af_decoder.")), reference
    with pytest.raises(FileNotFoundError, match="model.init_from='nap-sl-hartman3'.*did you mean"):
        model.load_network_weights("nap-sl-hartman3")


def class_paths(node):
    if isinstance(node, dict):
        if isinstance(node.get("class_path"), str):
            yield node["class_path"]
        for value in node.values():
            yield from class_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from class_paths(value)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_parses_and_its_class_paths_import(config):
    composed = load_composed(config)
    has = {part: "class_path" in (composed.get(part) or {}) for part in ("model", "data")}
    if all(has.values()):  # a system config
        printed = print_config(config)
    elif users := [c for c in CONFIGS if c.parent == config.parent and config.resolve() in base_files(c)
                   and all("class_path" in (load_composed(c).get(part) or {}) for part in ("model", "data"))]:
        # a system's own base (configs/nap/base.yaml, configs/maml/base-glyphs.yaml): alone it is no valid command
        # line (it lacks a model or a data class), so it is checked through a config of its folder built on it
        printed = print_config(users[0])
    else:  # a piece or overlay (trainer/, logger/, losses/, shots/): parsed on top of a system config
        assert not has["model"], f"{config}: a model without data, and no config in its folder builds on it"
        printed = print_config(SYSTEM_CONFIG, config)
    paths = list(class_paths(printed))
    assert any(p == printed["model"]["class_path"] for p in paths)
    if has["data"]:  # one name per DataModule: written as --print_config writes it (datamodules.<modality>.<Class>)
        assert composed["data"]["class_path"] == printed["data"]["class_path"], f"{config}: data.class_path"
    for path in paths:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"{config}: class_path {path} does not import"


def test_print_config_shows_the_merged_pieces():
    printed = print_config(SYSTEM_CONFIG)
    logger = printed["trainer"]["logger"]["init_args"]
    assert (logger["project"], logger["group"], logger["mode"]) == ("metazoo", "protonet-glyphs-5w1s", "auto")
    assert "callbacks.EpisodeGallery" in [c["class_path"] for c in printed["trainer"]["callbacks"]]
    assert (printed["trainer"]["max_epochs"], printed["trainer"]["log_every_n_steps"]) == (8, 20)
