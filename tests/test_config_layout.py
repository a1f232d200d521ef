"""Every shipped run config resolves to what it resolved to before the house-plan refactor (issue 22).

``tests/data/print_config/<name>.yaml`` holds ``zoo fit --config <name> --print_config`` as printed at commit
544d044 (before issue 22's moves, renames and config de-duplication), for every shipped config with a model and a
data class (the overlays and bases under trainer/, logger/, losses/, shots/, callbacks/ and */base.yaml are not run
alone). The output had nothing volatile to strip (no absolute or temporary paths; the placeholder roots such as
``/path/to/CUB_200_2011`` are the configs' own). A config may move its values into shared bases or overlays, and
a class may move (``zoo.moved.MOVED``), but the values a run gets must stay the same: the test compares today's
print with the golden after mapping the golden's class paths through ``MOVED``.

Rewrite a golden only for a change that is meant to change what a config runs, and say so in the commit:
``python tests/test_config_layout.py NAME ...`` (no NAME: write the missing ones).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import yaml
from support import ROOT, print_config_text

from zoo.compose import load_composed
from zoo.moved import resolve_class_path

CONFIGS = ROOT / "configs"
GOLDEN = ROOT / "tests" / "data" / "print_config"


def run_config_names() -> list[str]:
    """Shipped configs a run starts from: those whose composed model and data both name a class."""
    return sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml")
                  if all("class_path" in (load_composed(p).get(part) or {}) for part in ("model", "data")))


def golden_names() -> list[str]:
    return sorted(p.relative_to(GOLDEN).with_suffix("").as_posix() for p in GOLDEN.rglob("*.yaml"))


def moved_class_paths(node: Any) -> Any:
    """``node`` with every ``class_path`` value mapped to where that class lives now (``zoo.moved``)."""
    if isinstance(node, dict):
        return {k: resolve_class_path(v) if k == "class_path" and isinstance(v, str) else moved_class_paths(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [moved_class_paths(v) for v in node]
    return node


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
    monkeypatch.setattr("zoo.moved.MOVED", {"zoo.ProtoNet": "zoo.a.ProtoNet", "zoo.a.ProtoNet": "zoo.b.ProtoNet"})
    node = {"model": {"class_path": "zoo.ProtoNet", "init_args": {"name": "zoo.ProtoNet"}},
            "callbacks": [{"class_path": "zoo.Conv4"}]}
    assert moved_class_paths(node) == {"model": {"class_path": "zoo.b.ProtoNet",
                                                 "init_args": {"name": "zoo.ProtoNet"}},
                                       "callbacks": [{"class_path": "zoo.Conv4"}]}


@pytest.mark.parametrize("name", golden_names())
def test_print_config_is_the_golden_modulo_moved_classes(name):
    golden = moved_class_paths(yaml.safe_load((GOLDEN / f"{name}.yaml").read_text()))
    now = yaml.safe_load(print_config_text(name))
    assert now == golden, f"{name}: " + "; ".join(differences(golden, now))


def write_goldens(names: list[str]) -> None:
    for name in names:
        path = GOLDEN / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(print_config_text(name))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    write_goldens(sys.argv[1:] or sorted(set(run_config_names()) - set(golden_names())))
