"""The newcomer's path through the `zoo` command: every subcommand listed, the listing subcommands start without
Lightning, one-line errors with the closest names, no abbreviated options, a warning for untrained weights, and
the README's commands run verbatim from a directory outside the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from support import ROOT, zoo_env
from zoo.cli.commands import SUBCOMMANDS, main

GLYPHS = str(ROOT / "configs/protonet/glyphs.yaml")


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """``zoo ARGS`` in this process: exit status, standard output, standard error."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_subcommand_with_one_line(capsys):
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    listed = dict(re.findall(r"^  (\w+) +(\S.*)$", out, re.MULTILINE))
    for name in ("fit", "validate", "test", "predict", "configs", "check", "compare", "report", "publish",
                 "pretrained"):
        assert listed.get(name), f"zoo --help does not list {name}"
    assert set(SUBCOMMANDS) <= set(listed)
    assert run_main([], capsys)[1] == out  # `zoo` alone prints the same


def test_pretrained_lists_name_system_setting_accuracy_and_command(capsys):
    code, out, _ = run_main(["pretrained"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("protonet-conv4-glyphs-5w1s "))
    # the registry's test_acc 0.9659 and test_ci95 0.0031, in percent
    assert re.search(r"protonet-conv4-glyphs-5w1s +protonet +96\.59 \+- 0\.31 % +Glyphs 5-way 1-shot", row)
    assert row.rstrip().endswith("zoo test --pretrained protonet-conv4-glyphs-5w1s")
    nap = next(line for line in out.splitlines() if line.startswith("nap-hartmann3 "))
    assert "regret@50 0.0156 +- 0.0091" in nap  # a BO policy's headline is its regret after the most trials
    assert len([line for line in out.splitlines() if "zoo test --pretrained" in line]) == len(
        __import__("zoo").list_pretrained())


def test_listing_subcommands_start_without_lightning(tmp_path):
    """`zoo --help`, `configs`, `pretrained`, `compare`, `report`, `publish --help` in a fresh interpreter: Lightning
    (seconds to import) is never loaded."""
    script = (
        "import sys\n"
        "from zoo.cli.commands import main\n"
        f"for args in [['--help'], ['configs'], ['pretrained'], ['compare', '--help'], ['report', '--help'],\n"
        f"             ['publish', '--help'], ['compare', {str(tmp_path / 'a')!r}, {str(tmp_path / 'b')!r}]]:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'lightning')[:3])\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=zoo_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-500:]


@pytest.mark.parametrize("args, message", [
    (["fit", "--config", "protonet/glyph"], "did you mean protonet/glyphs"),
    (["fit", "--config", "configs/protonet/glyph.yaml"], "did you mean protonet/glyphs"),
    (["test", "--pretrained", "protonet-conv4-glyph-5w1s"], "did you mean protonet-conv4-glyphs-5w1s"),
    (["fitt", "--config", "protonet/glyphs"], "did you mean fit"),
])
def test_a_misspelt_name_is_one_line_with_the_closest_names(args, message, capsys):
    code, _, err = run_main(args, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("option", ["--trainer.max_epoch", "--trainer.max_epochz"])
def test_an_abbreviated_or_misspelt_option_is_refused_in_one_line(option, capsys):
    """`--trainer.max_epoch 1` was silently taken as `--trainer.max_epochs` (argparse's prefix matching)."""
    code, out, err = run_main(["fit", "--config", GLYPHS, option, "1", "--print_config"], capsys)
    assert code == 2 and not out
    assert f"zoo fit: error: unrecognized arguments: {option} 1; did you mean --trainer.max_epochs" in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_misspelt_model_argument_names_the_class_and_its_closest_parameter(capsys):
    code, _, err = run_main(["fit", "--config", GLYPHS, "--model.init_args.distanse", "cosine", "--print_config"],
                            capsys)
    assert code == 2
    assert "--model (zoo.ProtoNet): Option 'distanse' is not accepted; did you mean distance?" in err
    assert len(err.strip().splitlines()) == 1, err


def test_untrained_weights_are_warned_about():
    from zoo import Conv4, ProtoNet
    from zoo.cli.lightning_cli import warn_if_untrained

    model = ProtoNet(Conv4())
    with pytest.warns(UserWarning, match="ProtoNet was given no trained weights"):
        warn_if_untrained(model, {"ckpt_path": None, "pretrained": None}, "test")
    for given in ({"ckpt_path": "run/checkpoints/best.ckpt"}, {"pretrained": "protonet-conv4-glyphs-5w1s"}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warn_if_untrained(model, given, "test")


def test_test_without_weights_warns_end_to_end(glyphs_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="no trained weights"):
        main(["test", "--config", GLYPHS, "--config", "logger/csv", f"--trainer.logger.init_args.save_dir={tmp_path}",
              "--data.test_episodes=3", "--trainer.enable_progress_bar=false"])


def test_fit_help_with_a_config_lists_its_data_options(capsys):
    code, out, _ = run_main(["fit", "--config", "protonet/glyphs", "--help"], capsys)
    assert code == 0
    assert "Options of datamodules.images.GlyphsDataModule, this config's data" in out
    assert "--data.test_episodes" in out and "--data.val_episodes" in out


def test_the_quick_recipe_tests_a_pretrained_checkpoint_on_100_episodes(glyphs_data, tmp_path, monkeypatch, capsys):
    """`zoo test --pretrained NAME --config trainer/quick`: the documented quick look (100 of the 1,000 fixed test
    episodes; the episode table records exactly those)."""
    import csv

    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["test", "--pretrained", "protonet-conv4-glyphs-5w1s", "--config", "trainer/quick",
                               "--config", "logger/csv", "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, err[-2000:]
    with open(next(tmp_path.glob("runs/csv/*/test_episodes.csv"))) as f:
        assert len(list(csv.DictReader(f))) == 100


# -- the README's commands, verbatim, from a directory outside the repository ------------------------------------

#: What makes a README command need something a fresh clone does not have: a placeholder, the user's own data or
#: runs, or W&B credentials. Every other fenced `zoo ...` command is run.
NEEDS_USER_INPUT = re.compile(r"<|\.\.\.|\bmy/|/data/|--publish|^zoo (compare|report|publish)\b")
#: The options that shrink a command to seconds; the command itself is run as the README spells it.
FAST = {"fit": ["--trainer.fast_dev_run=true"], "test": ["--trainer.limit_test_batches=1"],
        "validate": ["--trainer.limit_val_batches=1"]}


def readme_commands() -> list[str]:
    """Every `zoo ...` command in the README's fenced code blocks, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell)?\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split(" # ")[0].strip()
            if command.startswith("zoo "):
                commands.append(command)
    return commands


def runnable_readme_commands() -> list[str]:
    return [c for c in readme_commands() if not NEEDS_USER_INPUT.search(c)]


def test_the_readme_has_runnable_commands():
    commands = runnable_readme_commands()
    assert {"zoo fit  --config configs/protonet/glyphs.yaml", "zoo test --pretrained protonet-conv4-glyphs-5w1s",
            "zoo check --config configs/protonet/glyphs.yaml"} <= {re.sub(r" +$", "", c) for c in commands}, commands


@pytest.mark.parametrize("command", runnable_readme_commands())
def test_readme_command_runs_verbatim_outside_the_repository(command, glyphs_data, tmp_path, monkeypatch, capsys):
    """The command from a temporary working directory, shrunk by :data:`FAST` options only; it may write its run
    under ``runs/`` (the configs' logger directory) and nothing else into the working directory."""
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command)[1:]
    code, out, err = run_main([*args, *FAST.get(args[0], [])], capsys)
    assert code == 0, (out + err)[-3000:]
    if "--print_config" in args:
        assert "class_path: zoo.ProtoNet" in out
    assert {p.name for p in tmp_path.iterdir()} <= {"runs"}, sorted(tmp_path.rglob("*"))[:10]


def test_zoo_runs_as_a_module_from_outside_the_repository(tmp_path):
    """`python -m zoo configs` from another directory: the entry point and the shipped configs' location."""
    proc = subprocess.run([sys.executable, "-m", "zoo", "configs"], cwd=tmp_path, env=zoo_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^  protonet/glyphs +\S", proc.stdout, re.MULTILINE)
    assert str(Path(ROOT / "configs")) in proc.stdout


# -- the Python API -----------------------------------------------------------------------------------------------

def test_dir_zoo_lists_every_public_name_before_loading_it():
    script = ("import sys, zoo\n"
              "names = dir(zoo)\n"
              "print(sorted(set(zoo.__all__) - set(names)), 'lightning' in sys.modules, 'zoo.methods.raml' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=zoo_env(Path("/tmp")))
    assert proc.stdout.strip() == "[] False False", proc.stdout + proc.stderr[-2000:]
    import zoo

    assert {"ProtoNet", "MAML", "RAML", "GPAM", "MetaDMoE", "NAPModule", "load_pretrained"} <= set(zoo.__all__)
    assert all(getattr(zoo, name) is not None for name in zoo.__all__)


@pytest.mark.parametrize("name", ["EpisodicModule", "ProtoNet", "MAML", "ANIL", "RAML", "MetaRTL"])
def test_a_system_forward_has_its_own_docstring(name):
    """Not Lightning's template ("Same as torch.nn.Module.forward"), which ProtoNet.forward showed in help()."""
    import inspect

    import lightning.pytorch as pl

    import zoo

    doc = inspect.getdoc(getattr(zoo, name).forward)
    assert doc and doc != inspect.getdoc(pl.LightningModule.forward)
