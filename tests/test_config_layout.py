"""Every shipped run config resolves to what it resolved to before the house-plan refactor (issue 22).

``tests/data/print_config/<name>.yaml`` holds ``zoo fit --config <name> --print_config`` as printed at commit
544d044 (before issue 22's moves, renames and config de-duplication), for every shipped config with a model and a
data class (the overlays and bases under trainer/, logger/, losses/, shots/, callbacks/ and */base.yaml are not run
alone). The output had nothing volatile to strip (no absolute or temporary paths; the placeholder roots such as
``/path/to/CUB_200_2011`` are the configs' own). A config may move its values into shared bases or overlays, and
a class may move (``zoo.hub.moved.MOVED``), but the values a run gets must stay the same: the test compares today's
print with the golden after mapping the golden's class paths through ``MOVED``. A value the model takes from the
data through a link (``zoo.cli.lightning_cli.LINKS``) is no longer printed: the golden's value of the link's target must be the
value of its source today.

Rewrite a golden only for a change that is meant to change what a config runs, and say so in the commit:
``python tests/test_config_layout.py NAME ...`` (no NAME: write the missing ones).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import yaml
from support import ROOT, print_config_text

from jsonargparse import Namespace

from zoo.cli.lightning_cli import LINKS, build_cli, check_link_targets, expand_args, set_link_targets
from zoo.cli.compose import load_composed
from zoo.hub.moved import resolve_class_path
from zoo.hub.pretrained import list_pretrained

CONFIGS = ROOT / "configs"
GOLDEN = ROOT / "tests" / "data" / "print_config"


def run_config_names() -> list[str]:
    """Shipped configs a run starts from: those whose composed model and data both name a class."""
    return sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml")
                  if all("class_path" in (load_composed(p).get(part) or {}) for part in ("model", "data")))


def golden_names() -> list[str]:
    return sorted(p.relative_to(GOLDEN).with_suffix("").as_posix() for p in GOLDEN.rglob("*.yaml"))


def moved_class_paths(node: Any) -> Any:
    """``node`` with every ``class_path`` value mapped to where that class lives now (``zoo.hub.moved``)."""
    if isinstance(node, dict):
        return {k: resolve_class_path(v) if k == "class_path" and isinstance(v, str) else moved_class_paths(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [moved_class_paths(v) for v in node]
    return node


def linked_from(golden: dict, now: dict) -> list[str]:
    """Take out of ``golden`` each value that ``now`` gets through a link (``LINKS``: its target, which
    ``--print_config`` leaves out), checking that it is the value of the link's source in ``now``; the failures."""
    failures = []
    for source, target in LINKS:
        *parents, leaf = target.split(".")
        node = golden
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = now
        for key in source.split("."):
            value = value.get(key, differences) if isinstance(value, dict) else differences
        if value is differences:
            failures.append(f"{target}: golden {node[leaf]!r}, now neither printed nor linked from {source}")
        elif value != node[leaf]:
            failures.append(f"{target}: golden {node[leaf]!r}, now {value!r} (from {source})")
        del node[leaf]
    return failures


def differences(expected: Any, actual: Any, key: str = "") -> list[str]:
    """The dotted keys where ``actual`` differs from ``expected``, each with both values (for the failure)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for k in sorted(set(expected) | set(actual), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if k not in actual:
                found.append(f"{sub}: missing (golden {expected[k]!r})")
            elif k not in expected:
                found.append(f"{sub}: new ({actual[k]!r})")
            else:
                found += differences(expected[k], actual[k], sub)
        return found
    return [] if expected == actual else [f"{key}: golden {expected!r}, now {actual!r}"]


def test_every_run_config_has_a_golden():
    """A run config added, removed or renamed without its golden would escape the comparison."""
    assert run_config_names() == golden_names(), \
        "write the golden of a new run config with `python tests/test_config_layout.py NAME`"


def test_a_moved_class_path_is_mapped(monkeypatch):
    """The comparison follows ``MOVED`` (two moves in a row too) and touches nothing but class paths."""
    monkeypatch.setattr("zoo.hub.moved.MOVED", {"zoo.ProtoNet": "zoo.a.ProtoNet", "zoo.a.ProtoNet": "zoo.b.ProtoNet"})
    node = {"model": {"class_path": "zoo.ProtoNet", "init_args": {"name": "zoo.ProtoNet"}},
            "callbacks": [{"class_path": "zoo.Conv4"}]}
    assert moved_class_paths(node) == {"model": {"class_path": "zoo.b.ProtoNet",
                                                 "init_args": {"name": "zoo.ProtoNet"}},
                                       "callbacks": [{"class_path": "zoo.Conv4"}]}


def test_a_linked_value_is_compared_through_its_source():
    golden = {"model": {"init_args": {"n_way": 5, "inner_lr": 0.4}}, "data": {"init_args": {"n_way": 5}}}
    assert linked_from(golden, {"data": {"init_args": {"n_way": 5}}}) == []
    assert golden == {"model": {"init_args": {"inner_lr": 0.4}}, "data": {"init_args": {"n_way": 5}}}
    golden["model"]["init_args"]["n_way"] = 5
    assert linked_from(golden, {"data": {"init_args": {"n_way": 20}}}) == [
        "model.init_args.n_way: golden 5, now 20 (from data.init_args.n_way)"]
    assert "nor linked" in linked_from({"model": {"init_args": {"n_way": 5}}}, {"data": {}})[0]


@pytest.mark.parametrize("name", golden_names())
def test_print_config_is_the_golden_modulo_moved_classes(name):
    golden = moved_class_paths(yaml.safe_load((GOLDEN / f"{name}.yaml").read_text()))
    # mapped too: a class printed by a public path that stayed (zoo.ProtoNet) while MOVED names it as moved
    now = moved_class_paths(yaml.safe_load(print_config_text(name)))
    failures = linked_from(golden, now) + differences(golden, now)
    assert not failures, f"{name}: " + "; ".join(failures)


def test_the_model_takes_linked_values_from_the_data(monkeypatch):
    """MAML's head is as many-way as the data's episodes; Meta-DMoE has one expert per super-domain."""
    monkeypatch.setattr(sys, "argv", ["zoo"])
    cli = build_cli(["fit", "--config", "maml/glyphs", "--data.n_way=3"], run=False)
    assert (cli.model.n_way, cli.model.learner.head.out_features, cli.datamodule.n_way) == (3, 3, 3)
    assert cli.model.hparams["n_way"] == 3  # what checkpoints and the registry's architectures record
    cli = build_cli(["fit", "--config", "meta_dmoe/glyphs-domains", "--data.super_domains=2"], run=False)
    assert (cli.model.num_experts, len(cli.model.experts), cli.model.hparams["num_experts"]) == (2, 2, 2)


@pytest.mark.parametrize("option", ["--model.init_args.n_way=7", "--model.n_way=7"])
def test_a_link_target_set_against_its_source_is_an_error(option, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["zoo"])
    with pytest.raises(SystemExit) as exit_:
        build_cli(["fit", "--config", "maml/glyphs", option], run=False)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{option.split('=')[0]} sets model.init_args.n_way to 7, but the model takes it from data.init_args.n_way " \
           "(5)" in err and "set --data.n_way instead" in err


def test_link_targets_a_command_line_sets(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  init_args: {n_way: 20}\ndata:\n  init_args: {n_way: 20}\n")
    args = ["fit", "--config", str(config), "-c", json.dumps({"model": {"num_experts": 3}}),
            "--model.sources=[a, b]", "--model.init_args.num_experts", "4", "--data.n_way=9"]
    assert {t: v for t, (_, v) in set_link_targets(args).items()} == {
        "model.init_args.n_way": 20, "model.init_args.num_experts": 4, "model.init_args.sources": ["a", "b"]}
    config_of = Namespace()
    config_of["data.init_args.n_way"], config_of["data.init_args.super_domains"] = 20, 4
    config_of["data.init_args.sources"] = ["a", "b"]
    assert check_link_targets(config_of, args) is None  # every target agrees with its source
    config_of["data.init_args.sources"] = ["b", "a"]
    assert "--model.sources sets model.init_args.sources to ['a', 'b']" in check_link_targets(config_of, args)


@pytest.mark.parametrize("name", list_pretrained())
def test_every_registry_command_line_agrees_with_the_links(name):
    """``zoo test --pretrained NAME`` (its config and recorded overrides, which may set a target: Meta-RTL's
    ``--model.sources``) passes :func:`check_link_targets`."""
    args = expand_args(["test", "--pretrained", name])
    printed = Namespace(yaml.safe_load(print_config_text(args=tuple(args))))
    assert check_link_targets(printed, args) is None


def write_goldens(names: list[str]) -> None:
    for name in names:
        path = GOLDEN / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(print_config_text(name))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    write_goldens(sys.argv[1:] or sorted(set(run_config_names()) - set(golden_names())))
