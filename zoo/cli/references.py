"""The ``zoo`` command line's references, resolved before anything parses it: ``--pretrained NAME``, shipped config
names and ``__base__`` composition.

The Lightning-free front (:mod:`zoo.cli.commands`) resolves them to give a one-line error for a misspelt name before
Lightning loads; the Lightning CLI (:mod:`zoo.cli.lightning_cli`) resolves them again on the ``sys.argv`` a DDP child re-executes.
Both import them from here, so neither imports the other at module level.
"""

from __future__ import annotations

from pathlib import Path

from zoo.cli.compose import CONFIG_FLAGS, expand_config_args
from zoo.hub.moved import resolve_class_path
from zoo.hub.shipped import resolve_config


def expand_pretrained(args: list[str]) -> list[str]:
    """Insert ``--config <entry config> <entry overrides>`` right after the subcommand when ``--pretrained NAME``
    is given.

    Idempotent, because DDP re-executes the command line in every child process.
    """
    name = None
    for i, a in enumerate(args):
        if a == "--pretrained" and i + 1 < len(args):
            name = args[i + 1]
        elif a.startswith("--pretrained="):
            name = a.split("=", 1)[1]
    if not name or not args or args[0].startswith("-"):
        return args
    from zoo.hub.pretrained import registry_entry

    entry = registry_entry(name)
    # compared in its expanded form: that is what a DDP child finds in sys.argv
    inserted = expand_config_args(["--config", str(entry.config_path), *entry.overrides])
    if args[1:1 + len(inserted)] == inserted:
        return args
    return [args[0], *inserted, *args[1:]]


def resolve_config_names(args: list[str]) -> list[str]:
    """Every ``--config`` value as :func:`zoo.hub.shipped.resolve_config` resolves it: a shipped config's name
    (``protonet/glyphs``) or a path inside the repository (``configs/protonet/glyphs.yaml``) becomes the shipped
    file's path, whatever the working directory."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in CONFIG_FLAGS and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = f"--config={resolve_config(arg.split('=', 1)[1])}"
    return out


def expand_args(args: list[str]) -> list[str]:
    """Everything the zoo adds to LightningCLI's command line, in order: the registry entry's config for
    ``--pretrained``, shipped config names, ``__base__`` composition. Idempotent (DDP re-executes ``sys.argv``)."""
    return expand_config_args(resolve_config_names(expand_pretrained(args)))


def configured_classes(expanded: list[str]) -> dict[str, str]:
    """The model's and the data's ``class_path`` that the ``--config`` values of an expanded command line (files or
    composed JSON strings, later ones winning) configure; ``zoo fit --config NAME --help`` lists their options."""
    import yaml

    classes: dict[str, str] = {}
    for i, arg in enumerate(expanded):
        value = expanded[i + 1] if arg in CONFIG_FLAGS and i + 1 < len(expanded) else \
            arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if value is None:
            continue
        text = value if value.lstrip().startswith("{") else Path(value).read_text()
        config = yaml.safe_load(text) or {}
        for part in ("model", "data"):
            if isinstance(config.get(part), dict) and config[part].get("class_path"):
                classes[part] = resolve_class_path(config[part]["class_path"])
    return classes
