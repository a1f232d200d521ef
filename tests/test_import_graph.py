"""The import graph of the packages has no circle, and no import runs back up the layers (issue 22).

A static walk of every ``import`` statement (``ast``: nothing is imported, so it needs neither Lightning nor the
optional dependencies). Function-level imports count: a circle closed inside a function still ties two modules
together and breaks as soon as someone hoists the import. Left out, on purpose: imports under
``if TYPE_CHECKING:`` (they never run) and ``importlib.import_module`` with a computed name (the ``zoo`` command's
tool table; a string is not an edge a reader follows). ``from zoo import ProtoNet`` goes where ``zoo``'s lazy
table (``_LAZY`` in ``zoo/__init__.py``) sends it, because that is the module it imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Bottom to top: a package may import those before it, never one after it.
LAYERS = ["safefiles", "datamodules", "callbacks", "zoo"]
#: Inside ``zoo``, bottom to top (``zoo`` itself, the lazy public names, sits on top: it names everything).
ZOO_LAYERS = [("zoo.hub", "zoo.nn", "zoo.training"), ("zoo.methods",), ("zoo.cli",)]
#: Imports that run up a layer today, each with why; the test fails on any other one, and when one of these goes.
KNOWN_UPWARD = {
    # OmniglotRuns' paper score (error rate over the 20 runs with a Student-t interval) is summarised by the data
    # module and needs zoo's t-interval (function-level import). The evaluation template of issue 22 item 1 (a
    # module summarises its stage) is its natural home; until then the statistics live once, in zoo.
    "datamodules.images.omniglot_small -> zoo.training.metrics",
    # Resuming a W&B run reads the run id from its directory's name; the naming convention (run_label / run_id_of)
    # lives once, with the run reader zoo.cli.runs, which `zoo compare` / `zoo report` import without Lightning -
    # the callbacks package imports Lightning on import, so the convention cannot move there (function-level import).
    "callbacks.run_dir -> zoo.cli.runs",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _lazy_table(tree: ast.AST) -> dict[str, str]:
    """A package's ``_LAZY = {"Name": "module", ...}`` (public name -> the module it is loaded from), if any."""
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def import_graph(root: Path = ROOT, packages: list[str] = LAYERS) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports (anywhere in the file), from the source under ``root``."""
    trees = {module_name(p, root): ast.parse(p.read_text(), str(p))
             for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    lazy = {name: _lazy_table(tree) for name, tree in trees.items()}
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        is_package = (root / name.replace(".", "/") / "__init__.py").is_file()
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = []
                for alias in node.names:
                    if f"{base}.{alias.name}" in trees:
                        targets.append(f"{base}.{alias.name}")  # a submodule
                    elif alias.name in lazy.get(base, {}):
                        targets.append(lazy[base][alias.name])
                    else:
                        targets.append(base)
            else:
                continue
            for target in targets:
                while target and target not in trees:  # `import a.b.c` of a name inside a module: its module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str, layers: list) -> int | None:
    for i, group in enumerate(layers):
        group = (group,) if isinstance(group, str) else group
        if any(module == g or module.startswith(g + ".") for g in group):
            return i
    return None


def upward_imports(graph: dict[str, set[str]], layers: list) -> list[str]:
    """``"a -> b"`` for every import of a module in a later (higher) layer than the importer's."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if _layer(a, layers) is not None and _layer(b, layers) is not None
                  and _layer(b, layers) > _layer(a, layers))


def test_walker_sees_function_level_relative_and_lazy_imports(tmp_path):
    """The walker itself, on a made-up package: a circle closed by a function-level import is found, and so are
    relative imports and names from a lazy table; TYPE_CHECKING imports are not edges."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('_LAZY = {"Thing": "pkg.sub.b"}\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import Thing\n")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
                                      "def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("def g():\n    import pkg.a\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("def g():\n    pass\n")
    assert cycles(import_graph(tmp_path, ["pkg"])) == []
    assert upward_imports({"low.x": {"high.y"}, "high.y": {"low.x"}}, ["low", "high"]) == ["low.x -> high.y"]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_packages_import_graph_has_no_circle(graph):
    assert "zoo.hub.pretrained" in graph and "safefiles" in graph  # the walk saw the packages
    assert cycles(graph) == []


def test_no_import_runs_back_up_the_layers(graph):
    """safefiles < datamodules < callbacks < zoo; inside zoo: hub, nn, training < methods < cli."""
    assert upward_imports(graph, LAYERS) == sorted(KNOWN_UPWARD)
    assert upward_imports(graph, ZOO_LAYERS) == []
