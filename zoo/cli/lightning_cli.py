"""The Lightning side of the ``zoo`` command: LightningCLI over every system and dataset of the zoo (the command's
front, its listing subcommands and reference resolution, which need no Lightning, are :mod:`zoo.cli.commands`).

    zoo fit      --config configs/protonet/glyphs.yaml          (then tests the best checkpoint: test_after_fit)
    zoo test     --config configs/protonet/glyphs.yaml --ckpt_path runs/.../checkpoints/best.ckpt
    zoo test     --pretrained protonet-conv4-glyphs-5w1s
    zoo predict  --pretrained protonet-conv4-glyphs-5w1s --data.predict_support_dir S --data.predict_query_dir Q
    zoo fit      --config protonet/glyphs                       (a shipped config by name, from any directory)
    zoo configs                                                 (lists the shipped configs)
    zoo pretrained                                              (the registry: name, system, accuracy +- CI, command)
    zoo check    --config configs/protonet/glyphs.yaml          (only the data checks fit runs before training)
    zoo compare  RUN_A RUN_B                 (paired difference on shared test episodes: zoo.cli.compare)
    zoo report   RUN... --output report.html (HTML + Markdown report of finished runs: zoo.cli.report)
    zoo publish  NAME                        (upload a registry checkpoint as a W&B artifact: zoo.cli.publish)

Every ``--ckpt_path`` (a local file or a URL) is read through ``zoo.hub.checkpoint_io.load_checkpoint`` with
``weights_only=True``; ``fit --ckpt_path <run>/checkpoints/last.ckpt`` continues that run's directory and W&B run.

SIGTERM or Ctrl+C stops a command between batches; a stopped ``fit`` saves ``<run>/checkpoints/last.ckpt`` to
continue from, and the command exits 143 (SIGTERM) or 130 (SIGINT) (:mod:`callbacks.interruption`). A NaN or
infinite training loss stops ``fit`` with an error naming the step (``--on_nonfinite_loss=skip`` skips such steps
instead: :mod:`callbacks.nonfinite`). A ``fit`` that fails marks its run directory (``failed.txt``).

``--pretrained NAME`` stands for the registry entry's own config and its recorded overrides (so the test runs in the
setting the recorded numbers were measured in) followed by loading its verified weights; any later option still
overrides. A config may build on shared pieces with ``__base__`` (see :mod:`zoo.cli.compose`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

import callbacks
import datamodules
import zoo
# `import zoo` loads these lazily now; imported here, as `import zoo` did before, they are known subclasses when
# jsonargparse resolves a short class name (`--model ProtoNet`)
from zoo import Conv4, EpisodicModule, ProtoNet, ResNet12, WandbLogger  # noqa: F401
from callbacks.interruption import exit_code
from callbacks.nonfinite import ACTIONS as NONFINITE_ACTIONS
from callbacks.run_dir import clear_unfinished, continue_run, mark_unfinished, run_dir
from safefiles import atomic_write_text
from zoo.hub.checkpoint_io import load_checkpoint, use_safe_checkpoint_io
from zoo.cli.references import expand_args, expand_pretrained, resolve_config_names  # noqa: F401 (zoo.cli's API)
from zoo.hub.moved import resolve_class_paths
from zoo.hub.shipped import close_matches


class ZooSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config beside the run's checkpoints, atomically, and sends it to the loggers.

    Lightning's own callback writes ``config.yaml`` to ``trainer.log_dir``; with W&B that is a directory shared by
    every run, so the second run crashed ("expected config.yaml to NOT exist") and the config did not sit beside
    the checkpoints. Here ``fit`` writes ``<run dir>/config.yaml`` (the parent of ``checkpoints/``) and the other
    subcommands write ``<subcommand>-config.yaml`` in their own run directory.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pass  # ModelCheckpoint resolves its directory after this callback's setup; saving waits for *_start

    def _save(self, trainer: pl.Trainer, subcommand: str) -> None:
        if getattr(self, "_saved", False):
            return
        self._saved = True
        out = run_dir(trainer)
        name = "config.yaml" if subcommand == "fit" else f"{subcommand}-config.yaml"
        text = self.parser.dump(self.config, skip_none=False)
        if trainer.is_global_zero:
            atomic_write_text(out / name, text)
        config = yaml.safe_load(text)
        for logger in trainer.loggers:
            logger.log_hyperparams({"cli": config})

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, "fit")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._save(trainer, "validate")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, "test")

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, "predict")


def one_line_error(message: str, options: list[str]) -> str:
    """jsonargparse's error ``message`` as one line, with the closest valid names for an unknown one.

    An unknown option (``Unrecognized arguments: --trainer.max_epochz 1``) gets the closest of ``options`` (the
    subcommand's own); an unknown argument of a configured class (``Parser key "model": ... Problem with given
    class_path 'zoo.ProtoNet': Option 'n_wey' is not accepted``) gets the closest parameters of that class.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or ["invalid arguments"]
    if (unknown := re.search(r"unrecognized arguments: (\S+)", message, re.IGNORECASE)) is not None:
        guess = close_matches(unknown.group(1).split("=", 1)[0], options)
        return lines[0] + (f"; did you mean {' or '.join(guess)}?" if guess else "")
    key = re.match(r'Parser key "([^"]+)"', lines[0])
    problem = re.search(r"Problem with given class_path '([\w.]+)':\s*\n\s*(.+)", message)
    if key is None or problem is None:
        return " ".join(lines[:2])
    class_path, reason = problem.groups()
    text = f"--{key.group(1)} ({class_path}): {reason.strip()}"
    if (option := re.search(r"Option '(\w+)' is not accepted", reason)) is not None:
        import importlib
        import inspect

        module, _, name = class_path.rpartition(".")
        try:
            accepted = list(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
        except (ImportError, AttributeError, TypeError, ValueError):
            accepted = []
        guess = close_matches(option.group(1), accepted)
        text += f"; did you mean {' or '.join(guess)}?" if guess else ""
    return text


class ZooArgumentParser(LightningArgumentParser):
    """LightningCLI's parser with the zoo's errors: one line (:func:`one_line_error`) that names the bad option and
    the closest valid ones, instead of the whole usage (about 50 lines of every system's options) above the message.
    Abbreviations are refused (``allow_abbrev=False``, set in :meth:`ZooCLI.init_parser`): ``--trainer.max_epoch 1``
    silently meant ``--trainer.max_epochs`` before.
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active  # JSONARGPARSE_DEBUG=true: jsonargparse's traceback

        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        options = [o for o in getattr(parser, "_option_string_actions", {}) if o.startswith("--")]
        sys.stderr.write(f"{prog}: error: {one_line_error(message, options)} ({prog} --help lists the options)\n")
        self.exit(2)


#: Values the model and the data must agree on, written once in the data config and copied to the model when the
#: command line is parsed (LightningCLI's ``link_arguments``; ``--print_config`` and the saved ``config.yaml`` leave
#: the targets out). A link applies where the configured data class has the source and the model class the target.
#: A target set to another value than its source's is an error (:func:`check_link_targets`), not silently replaced.
#: Targets are the model's own arguments: a nested one (``model.init_args.backbone.init_args.image_size``) is left
#: out of the model's saved hyper-parameters (measured with jsonargparse 4.53), so checkpoints and the registry's
#: recorded architectures would lose it.
LINKS = (
    ("data.init_args.n_way", "model.init_args.n_way"),  # MAML/ANIL's N-way head: the episodes' way
    ("data.init_args.super_domains", "model.init_args.num_experts"),  # Meta-DMoE: one expert per super-domain
    ("data.init_args.sources", "model.init_args.sources"),  # Meta-RTL: the source tasks, in the data's order
)


def _config_document(value: str) -> Any:
    """A ``--config`` value as data: the file it names, or the YAML/JSON string it is (None if neither)."""
    try:
        is_file = Path(value).is_file()
    except OSError:  # a config string too long to be a file name
        is_file = False
    try:
        return yaml.safe_load(Path(value).read_text() if is_file else value)
    except (OSError, yaml.YAMLError):
        return None


def set_link_targets(args: list[str]) -> dict[str, tuple[str, Any]]:
    """The link targets (:data:`LINKS`) that a command line sets itself: target -> (where, value), the last setting
    winning as in parsing. ``where`` names the option or the ``--config`` that set it."""
    found: dict[str, tuple[str, Any]] = {}
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
        if name in ("--config", "-c"):
            document = _config_document(value)
            for _, target in LINKS:
                part, _, leaf = target.partition(".init_args.")
                section = document.get(part) if isinstance(document, dict) else None
                init_args = section.get("init_args") if isinstance(section, dict) else None
                for where in (init_args, section):
                    if isinstance(where, dict) and leaf in where:
                        found[target] = (f"--config {value if len(value) < 80 else value[:77] + '...'}", where[leaf])
                        break
        elif name.startswith("--") and name[2:] in {t for _, t in LINKS} | {t.replace(".init_args", "")
                                                                           for _, t in LINKS}:
            target = next(t for _, t in LINKS if name[2:] in (t, t.replace(".init_args", "")))
            try:
                found[target] = (name, yaml.safe_load(value))
            except yaml.YAMLError:
                found[target] = (name, value)
    return found


def check_link_targets(config: Any, args: list[str]) -> str | None:
    """The error for a command line that sets a link's target (``--model.n_way 7``) to another value than the link
    copies from its source (``data.n_way`` 5); None when every target it sets agrees. Without this, the link would
    replace the value silently: a 7-way head asked for, a 5-way one trained."""
    for source, target in LINKS:
        if target not in (given := set_link_targets(args)) or config.get(source) is None:
            continue
        where, value = given[target]
        linked = config.get(source)
        if value != linked:
            return (f"{where} sets {target} to {value!r}, but the model takes it from {source} ({linked!r}), a link "
                    f"(zoo.cli.lightning_cli.LINKS): set --{source.replace('.init_args', '')} instead")
    return None


class ZooCLI(LightningCLI):
    """LightningCLI in subclass mode (any zoo model or datamodule) with the ``--pretrained`` option.

    Its Trainer reads checkpoints only through ``zoo.hub.checkpoint_io`` (``weights_only=True``, URLs fetched into the
    cache first), resumes a fit into the checkpoint's own run, and ``predict`` always has a prediction writer.
    """

    def _parse_ckpt_path(self) -> None:
        """Apply a ``--ckpt_path`` checkpoint's hyper-parameters to the config, reading it through
        ``load_checkpoint`` (LightningCLI's own version calls ``torch.load`` itself, and skips URLs).

        This runs right after parsing, so a checkpoint that is missing, a directory or not trusted fails here,
        before any data is loaded. ``best``/``last``/``hpc`` are left to the Trainer to resolve.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        special = ckpt_path in ("best", "last", "hpc") or str(ckpt_path).startswith("registry")
        if not ckpt_path or (special and not Path(ckpt_path).exists()):
            return
        from lightning.pytorch.utilities import rank_zero_warn

        moved: list[tuple[str, str]] = []
        # a checkpoint saved before a class moved names its old path (zoo.hub.moved): mapped, and said so
        hparams = resolve_class_paths(load_checkpoint(ckpt_path).get("hyper_parameters", {}), moved)
        for old, new in dict(moved).items():
            rank_zero_warn(f"--ckpt_path {ckpt_path}: its hyper-parameters name {old}, which moved; read as {new}")
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:  # as LightningCLI does: a subclass-mode model's class and its arguments
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"Parsing of the hyper-parameters in --ckpt_path {ckpt_path} failed!\n")
            raise

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):
            # Lightning's results table shows raw fractions (0.9659...) and cuts long metric names to the
            # terminal's width; print_results prints the same metrics in callbacks.progress.format_value's one format.
            # --verbose true brings Lightning's table back.
            parser.set_defaults(verbose=False)
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """LightningCLI's parse, then :func:`check_link_targets` on the command line's own settings."""
        super().parse_arguments(parser, args)
        if isinstance(args, dict) or (args is not None and not isinstance(args, list)):
            return  # a parsed object, not a command line (no ``--config`` or options to read)
        argv = sys.argv[1:] if args is None else args
        subcommand = self.config.get("subcommand")
        error = check_link_targets(self.config[subcommand] if subcommand else self.config, argv)
        if error:
            parser.error(error)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("allow_abbrev", False)  # a prefix of an option is an error, not that option
        return super().init_parser(**kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        use_safe_checkpoint_io(trainer)
        if self.subcommand == "fit":
            continue_run(trainer, self.config_init["fit"].get("ckpt_path"))
        if self.subcommand == "predict" and not any(isinstance(c, BasePredictionWriter) for c in trainer.callbacks):
            trainer.callbacks.append(callbacks.PredictionWriter())  # predictions are the point of `zoo predict`
        return trainer

    def add_arguments_to_parser(self, parser: Any) -> None:
        for source, target in LINKS:
            parser.link_arguments(source, target, apply_on="parse")
        parser.add_argument("--pretrained", type=str | None, default=None,
                            help="Name of a checkpoint in the pretrained registry (see zoo.list_pretrained()).")
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, test the best-on-validation checkpoint on the fixed test episodes.")
        parser.add_argument("--on_nonfinite_loss", type=str, default="fail", choices=NONFINITE_ACTIONS,
                            help="A NaN/inf training loss: 'fail' stops with an error naming the step and terms; "
                                 "'skip' drops that step's update (callbacks.NonFiniteLoss).")

    def _instantiate_trainer(self, config: dict[str, Any], extra_callbacks: list[pl.Callback]) -> pl.Trainer:
        """Every trainer gets :class:`callbacks.Interruption` and :class:`callbacks.NonFiniteLoss`. When standard
        output is not a terminal (CI logs, ``nohup``), one :class:`callbacks.EpochProgress` line per epoch replaces
        Lightning's progress bar, unless the config asks for the bar (``enable_progress_bar: true``)."""
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        extra_callbacks = [*extra_callbacks, callbacks.Interruption(),
                           callbacks.NonFiniteLoss(self._get(self.config_init, "on_nonfinite_loss") or "fail")]
        if not sys.stdout.isatty() and config.get("enable_progress_bar") is not True and not any(
                isinstance(c, callbacks.EpochProgress) for c in configured):
            config = {**config, "enable_progress_bar": False}
            extra_callbacks = [*extra_callbacks, callbacks.EpochProgress()]
        return super()._instantiate_trainer(smoke_run_root(config), extra_callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        """Runs it; a ``fit`` that raised marks (or, if empty, removes) its run directory (``mark_unfinished``)."""
        try:
            super()._run_subcommand(subcommand)
        except BaseException as err:
            if subcommand == "fit" and self.trainer.state.fn == "fit":  # not the test after it
                mark_unfinished(self.trainer, err)
            raise
        if subcommand == "fit":
            clear_unfinished(self.trainer)

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit"):
            return
        ckpt = self.trainer.checkpoint_callback
        best = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        self.print_results("test")

    def print_results(self, stage: str) -> None:
        """The evaluation's metrics, full names, one number format (:func:`callbacks.progress.results_table`)."""
        from callbacks.progress import results_table

        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
        table = results_table(metrics, stage)
        if table and self.trainer.is_global_zero and not self.config[self.subcommand].get("verbose"):
            print(table, flush=True)

    def after_test(self) -> None:
        self.print_results("test")

    def after_validate(self) -> None:
        self.print_results("val")

    def _load_pretrained_weights(self) -> None:
        name = self.config[self.subcommand].get("pretrained")
        if name:
            from zoo.hub.pretrained import load_pretrained_weights

            load_pretrained_weights(self.model, name)

    def before_validate(self) -> None:
        self._load_pretrained_weights()
        warn_if_untrained(self.model, self.config["validate"], "validate")

    def before_test(self) -> None:
        self._load_pretrained_weights()
        warn_if_untrained(self.model, self.config["test"], "test")

    def before_predict(self) -> None:
        self._load_pretrained_weights()

    def before_fit(self) -> None:
        self._load_pretrained_weights()  # fine-tuning from a registry checkpoint


def smoke_run_root(config: dict[str, Any]) -> dict[str, Any]:
    """The trainer config with a fresh temporary ``default_root_dir`` for a ``fast_dev_run`` that names none.

    A fast_dev_run replaces the loggers by a dummy, so what would go to the run directory (the ``last`` checkpoint,
    Meta-DMoE's stage checkpoints) fell back to ``default_root_dir``, the working directory: every smoke run left a
    ``./checkpoints/last-vN.ckpt`` behind (from the repository root, in the registry's folder). A smoke run keeps
    nothing; the directory is removed when the process exits. An explicit ``default_root_dir`` is kept.
    """
    if not config.get("fast_dev_run") or config.get("default_root_dir"):
        return config
    import atexit
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="zoo-fast-dev-run-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return {**config, "default_root_dir": root}


def warn_if_untrained(model: pl.LightningModule, config: Any, subcommand: str) -> None:
    """Warn when ``validate``/``test`` evaluates weights nothing trained: no ``--ckpt_path`` and no ``--pretrained``
    (``zoo test --config protonet/glyphs`` alone reported 53.6 % for a random network without a word)."""
    if config.get("ckpt_path") or config.get("pretrained"):  # NAP's init_from is read by fit only
        return
    from lightning.pytorch.utilities import rank_zero_warn

    rank_zero_warn(f"zoo {subcommand}: {type(model).__name__} was given no trained weights (no --ckpt_path, "
                   f"or --pretrained): these numbers are those of its initial weights")


#: Parser names as the user types them (``zoo fit: error: ...``), not ``__main__.py fit``.
PARSER_KWARGS = {"prog": "zoo", **{c: {"prog": f"zoo {c}", "epilog": "With --config, --help also lists the "
                                        "options of the config's model and data (--data.test_episodes ...)."}
                                    for c in ("fit", "validate", "test", "predict")}}


def build_cli(args: ArgsType = None, run: bool = True) -> ZooCLI:
    """The configured CLI; with ``run=False`` it only builds model, datamodule and trainer (for scripts)."""
    if args is None:
        sys.argv = [sys.argv[0], *expand_args(sys.argv[1:])]
    elif isinstance(args, list):
        args = expand_args(args)
        if not run and args and args[0] in ("fit", "validate", "test", "predict"):
            args = args[1:]  # run=False takes no subcommand
    cli = ZooCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                 save_config_callback=ZooSaveConfigCallback, save_config_kwargs={"overwrite": True},
                 parser_class=ZooArgumentParser, parser_kwargs=PARSER_KWARGS,
                 seed_everything_default=0, args=args, run=run)
    if run:
        finish_runs(cli.trainer)
    return cli


def finish_runs(trainer: pl.Trainer) -> None:
    """Close the W&B run of a finished command.

    Lightning leaves it open (so ``fit`` and a following ``test`` share one run); closed here, a second command
    in the same Python process (a benchmark script, a notebook) gets a run of its own instead of appending to
    the previous one.
    """
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def check(args: list[str]) -> None:
    """``zoo check --config ...``: build the configured DataModule and run the checks ``fit`` runs before training
    (``datamodules.check``) on every split, printing one line per split; a failed check raises, naming what."""
    from datamodules.check import check_splits

    cli = build_cli(args, run=False)
    dm = cli.datamodule
    if not hasattr(dm, "sources"):
        raise SystemExit(f"zoo check: {type(dm).__name__} is not an episodic DataModule; nothing to check")
    dm.prepare_data()
    dm.setup("fit")  # builds the sources and checks every split, as before a fit
    for line in check_splits(dm, "fit"):  # the lines of the checks just run
        print(line)


def run_lightning(args: ArgsType = None) -> None:
    """The subcommands that build the Lightning CLI (``fit``, ``validate``, ``test``, ``predict``, ``check``), after
    :func:`zoo.cli.commands.main` resolved their references."""
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list) and argv[:1] == ["check"]:
        check(argv[1:])
        return
    if isinstance(argv, list) and any(a in ("-h", "--help") for a in argv):
        help_with_config_classes(argv)
        return
    try:
        build_cli(args)
    except SIGTERMException as stop:  # a SystemExit without a code: the shell would read a killed run as success
        raise SystemExit(exit_code(stop)) from None


def help_with_config_classes(argv: list[str]) -> None:
    """``zoo fit --config NAME --help``: Lightning's help, then the options of the config's model and data classes
    (``--data.test_episodes`` ...), which subclass mode otherwise shows only through ``--data.help CLASS``."""
    import warnings

    from zoo.cli.references import configured_classes

    commands = [argv] + [[argv[0], f"--{part}.help", class_path]
                         for part, class_path in configured_classes(expand_args(argv)).items()]
    for command in commands:
        if command is not argv:
            print(f"\nOptions of {command[2]}, this config's {command[1][2:-5]} (set as {command[1][:-5]}.NAME VALUE):")
        try:
            with warnings.catch_warnings():  # the command line is given as a list on purpose (several helps)
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                build_cli(command)
        except SystemExit as exit_:
            if exit_.code:
                raise

