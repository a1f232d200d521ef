"""`make reproduce`: the dispatcher runs exactly the commands that produced the README's figures (a fake runner;
the real full run takes hours and the quick one several minutes)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from support import ROOT

spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

SCRIPTS = sorted(f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py")
                 if p.stem not in ("common", "report", "reproduce"))


def recorded_commands() -> set[str]:
    """The commands the shipped results files say produced them (per NAP family, and per part of a file that merges
    several runs under ``runs``, where recorded: NAP's separately run likelihood stage)."""
    out = set()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        if path.stem.endswith("_quick"):
            continue
        data = json.loads(path.read_text())
        families = data.get("families") if isinstance(data.get("families"), dict) else {}
        per_family = {f["command"] for f in families.values() if isinstance(f, dict) and "command" in f}
        runs = data.get("runs") if isinstance(data.get("runs"), dict) else {}
        per_run = {r["command"] for r in runs.values() if isinstance(r, dict) and "command" in r}
        # a file whose methods were completed by several commands records each method's (" ; "-joined) commands
        methods = data.get("methods") if isinstance(data.get("methods"), dict) else {}
        per_run |= {c.strip() for m in methods.values() if isinstance(m, dict) and "command" in m
                    for c in m["command"].split(" ; ")}
        # a benchmark finished over several --resume invocations lists them all under ``commands``
        out |= (per_family | per_run) or set(data.get("commands") or [data["command"]])
    return out


def test_full_run_is_every_recorded_command_then_the_readme():
    assert set(reproduce.FULL) == recorded_commands()
    assert reproduce.commands(quick=False)[-1] == "python benchmarks/report.py"
    assert sorted({c.split()[1] for c in reproduce.FULL}) == SCRIPTS  # no benchmark left out


def test_quick_run_is_every_script_in_its_smoke_mode_and_leaves_the_readme():
    cmds = reproduce.commands(quick=True)
    assert sorted(c.split()[1] for c in cmds) == SCRIPTS and all(c.endswith(" --quick") for c in cmds)


def test_run_all_stops_at_the_first_failure_and_names_it(capsys):
    calls = []

    def runner(argv, cwd, env):
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # this checkout's zoo, not an installed one
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 3 if "b.py" in argv[-1] else 0)

    assert reproduce.run_all(["python a.py", "python b.py", "python c.py"], runner=runner) == 3
    assert calls == [[sys.executable, "a.py"], [sys.executable, "b.py"]]
    assert "`python b.py` failed (exit 3)" in capsys.readouterr().err


def test_make_reproduce_quick_calls_the_dispatcher():
    out = subprocess.run(["make", "-n", "reproduce", "QUICK=1"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "benchmarks/reproduce.py --quick" in out
    out = subprocess.run(["make", "-n", "reproduce"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "benchmarks/reproduce.py" in out and "--quick" not in out
