"""The front of the ``zoo`` command: its subcommand list, the subcommands that need no Lightning, and the
references (configs, registry names) every subcommand resolves the same way.

``zoo --help``, ``zoo configs``, ``zoo pretrained``, ``zoo compare``, ``zoo report`` and ``zoo publish`` run from
here without importing Lightning (it takes seconds to import); ``fit``, ``validate``, ``test``, ``predict`` and
``check`` build the Lightning CLI in :mod:`zoo.cli.lightning_cli` (``check`` too: the DataModule whose checks it runs is a
``LightningDataModule``, so building one imports Lightning). Before that, the command line's references are resolved here,
so a misspelt config or registry name is a one-line error with the closest names instead of a traceback:

- ``--config`` takes a file, a path inside the repository (``configs/protonet/glyphs.yaml``, from any working
  directory) or a shipped config's name (``protonet/glyphs``): :func:`zoo.hub.shipped.resolve_config`;
- ``--pretrained NAME`` stands for the registry entry's config and recorded overrides;
- ``__base__`` composition (:mod:`zoo.cli.compose`);

all three in :mod:`zoo.cli.references`, which the Lightning CLI reads too.
"""

from __future__ import annotations

import sys
from typing import Any

from zoo.cli.references import expand_args
from zoo.hub.shipped import CONFIGS, close_matches, describe_config, list_configs

#: Subcommands that build the Lightning CLI (:mod:`zoo.cli.lightning_cli`), with their one-line help.
LIGHTNING = {
    "fit": "train a system from a config (then test the best-on-validation checkpoint with --test_after_fit)",
    "validate": "evaluate a checkpoint or --pretrained weights on the validation episodes",
    "test": "evaluate a checkpoint or --pretrained weights on the fixed test episodes, with a 95% CI",
    "predict": "classify your own query images from labelled support folders (writes predictions.csv)",
    "check": "run only the data checks a fit runs before training, one line per split",
}
#: Subcommands that read files, runs or the registry: name -> (module with ``main(argv) -> int``, one-line help).
TOOLS = {
    "compare": ("zoo.cli.compare", "paired difference of two runs on their shared test episodes, with a 95% CI"),
    "report": ("zoo.cli.report", "HTML + Markdown report of finished runs (configs, curves, accuracies, galleries)"),
    "publish": ("zoo.cli.publish", "upload a registry checkpoint as a W&B model artifact"),
}
LISTINGS = {
    "configs": "list the shipped configs (what --config NAME takes) with one line each",
    "pretrained": "list the registry's checkpoints: name, system, setting, accuracy +- 95% CI, command",
}
SUBCOMMANDS = {**LIGHTNING, **LISTINGS, **{name: help_ for name, (_, help_) in TOOLS.items()}}


def usage() -> str:
    """What ``zoo``, ``zoo -h`` and ``zoo --help`` print: every subcommand with one line."""
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: zoo SUBCOMMAND [options]   (zoo SUBCOMMAND --help: the subcommand's options)", "",
             "Meta-learning and few-shot systems, trained and compared on fixed episodes.", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, help_ in SUBCOMMANDS.items()]
    lines += ["", "examples:",
              "  zoo fit --config protonet/glyphs                     # a shipped config by name, from any directory",
              "  zoo fit --config protonet/glyphs --trainer.fast_dev_run=true   # a one-batch smoke run",
              "  zoo test --pretrained protonet-conv4-glyphs-5w1s --config trainer/quick   # 100 test episodes",
              "  zoo fit --config protonet/glyphs --print_config      # every option with its value"]
    return "\n".join(lines)


def listing_usage(name: str, argv: list[str]) -> int:
    """``zoo configs --help`` (and ``pretrained``): the listing's one line; other arguments are an error."""
    if argv[0] not in ("-h", "--help"):
        fail(name, f"takes no arguments, got {' '.join(argv)}")
    print(f"usage: zoo {name}\n\n{LISTINGS[name]}.")
    return 0


def list_configs_command() -> int:
    """``zoo configs``: each shipped config's name (what ``--config`` takes) and the first line of its header."""
    names = list_configs()
    width = max(map(len, names), default=0)
    print(f"Shipped configs in {CONFIGS} (use as: zoo fit --config NAME):")
    for name in names:
        print(f"  {name:<{width}}  {describe_config(name)}")
    return 0


def list_pretrained_command() -> int:
    """``zoo pretrained``: the registry as a table (:func:`zoo.hub.pretrained.pretrained_table`)."""
    from zoo.hub.pretrained import REGISTRY, pretrained_table

    rows = pretrained_table()
    columns = ["name", "system", "result", "setting", "command"]
    titles = {"result": "accuracy +- 95% CI", "setting": "setting"}
    # The setting is prose; a shortened one keeps one line per checkpoint (the full text is in the registry).
    for row in rows:
        row["setting"] = row["setting"] if len(row["setting"]) <= 48 else row["setting"][:45] + "..."
    widths = {c: max(len(titles.get(c, c)), *(len(r[c]) for r in rows)) for c in columns}
    print(f"Pretrained checkpoints in {REGISTRY} (test one: the command; a quick look: add --config trainer/quick):")
    print("  ".join(f"{titles.get(c, c):<{widths[c]}}" for c in columns).rstrip())
    for row in rows:
        print("  ".join(f"{row[c]:<{widths[c]}}" for c in columns).rstrip())
    return 0


def fail(subcommand: str, message: str) -> None:
    """A one-line error (``zoo SUBCOMMAND: error: ...``) and exit status 2, argparse's status for bad usage."""
    print(f"zoo {subcommand}: error: {message}".replace("zoo : ", "zoo: "), file=sys.stderr)
    raise SystemExit(2)


def check_references(argv: list[str]) -> None:
    """Resolve the command line's configs and registry name before Lightning loads: a misspelt one is a one-line
    error with the closest names (:func:`fail`)."""
    try:
        expand_args(argv)
    except KeyError as err:  # an unknown --pretrained name; KeyError's str() would quote the message
        fail(argv[0], err.args[0] if err.args else str(err))
    except (FileNotFoundError, ValueError) as err:
        fail(argv[0], str(err))


def main(args: Any = None) -> None:
    """Entry point of the ``zoo`` console script and of ``python -m zoo``; ``args`` as LightningCLI takes them
    (``None``: ``sys.argv``)."""
    argv = sys.argv[1:] if args is None else args
    if not isinstance(argv, list):  # a dict or Namespace (LightningCLI's other forms of args)
        from zoo.cli.lightning_cli import run_lightning

        run_lightning(args)
        return
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    name, rest = argv[0], argv[1:]
    if name in LISTINGS:
        command = list_configs_command if name == "configs" else list_pretrained_command
        try:
            code = listing_usage(name, rest) if rest else command()
        except BrokenPipeError:  # `zoo pretrained | head`: the reader stopped; as the Python docs advise
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 0
    elif name in TOOLS:
        import importlib

        code = importlib.import_module(TOOLS[name][0]).main(rest)
    elif name in LIGHTNING:
        check_references(argv)
        from zoo.cli.lightning_cli import run_lightning

        run_lightning(args)
        return
    else:
        guess = close_matches(name, SUBCOMMANDS)
        hint = f"did you mean {' or '.join(guess)}? " if guess else ""
        fail("", f"unknown subcommand {name!r}; {hint}subcommands: {', '.join(SUBCOMMANDS)} (zoo --help)")
    if code:
        raise SystemExit(code)
