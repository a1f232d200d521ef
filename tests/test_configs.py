"""Configs: ``__base__`` composition (merge rules checked on tiny hand-written files), shipped config names, and
every config under configs/ parsing as ``--print_config`` parses it, with every ``class_path`` importable."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from unittest import mock

import pytest
import yaml
from support import ROOT

from zoo.cli import build_cli, expand_args, resolve_config_names
from zoo.compose import expand_config_args, load_composed, merge
from zoo.shipped import list_configs

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
    with pytest.raises(FileNotFoundError, match="protonet/glyphs"):  # the known names are listed
        resolve_config_names(["fit", "--config=protonet/glyph"])


def print_config(*configs) -> dict:
    """What ``zoo fit --config ... --print_config`` prints, parsed."""
    args = ["fit", *(a for c in configs for a in ("--config", str(c))), "--print_config"]
    out = io.StringIO()
    with mock.patch.object(sys, "argv", ["zoo"]), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        build_cli(args)
    assert not exit_.value.code, f"{configs}: exit {exit_.value.code}"
    return yaml.safe_load(out.getvalue())


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
    elif has["model"]:  # a system's own base (configs/nap/base.yaml): checked through a config built on it
        users = [c for c in CONFIGS if c.parent == config.parent and config in
                 [(c.parent / b).resolve() for b in yaml.safe_load(c.read_text()).get("__base__", [])]]
        assert users, f"{config}: a model without data, and no config in its folder builds on it"
        printed = print_config(users[0])  # alone, base.yaml is no valid command line (a data class is missing)
    else:  # a piece or overlay (trainer/, logger/, losses/, shots/): parsed on top of a system config
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
