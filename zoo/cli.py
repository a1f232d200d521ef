"""The ``zoo`` command: LightningCLI over every system and dataset of the zoo.

    zoo fit      --config configs/protonet/glyphs.yaml          (then tests the best checkpoint: test_after_fit)
    zoo test     --config configs/protonet/glyphs.yaml --ckpt_path runs/.../checkpoints/best.ckpt
    zoo test     --pretrained protonet-conv4-glyphs-5w1s
    zoo predict  --pretrained protonet-conv4-glyphs-5w1s --data.predict_support_dir S --data.predict_query_dir Q
    zoo fit      --config protonet/glyphs                       (a shipped config by name, from any directory)
    zoo configs                                                 (lists the shipped configs)
    zoo check    --config configs/protonet/glyphs.yaml          (only the data checks fit runs before training)
    zoo compare  RUN_A RUN_B                 (paired difference on shared test episodes: zoo.compare)
    zoo report   RUN... --output report.html (HTML + Markdown report of finished runs: zoo.report)
    zoo publish  NAME                        (upload a registry checkpoint as a W&B artifact: zoo.artifacts)

Every ``--ckpt_path`` (a local file or a URL) is read through ``zoo.checkpoint_io.load_checkpoint`` with
``weights_only=True``; ``fit --ckpt_path <run>/checkpoints/last.ckpt`` continues that run's directory and W&B run.

SIGTERM or Ctrl+C stops a command between batches; a stopped ``fit`` saves ``<run>/checkpoints/last.ckpt`` to
continue from, and the command exits 143 (SIGTERM) or 130 (SIGINT) (:mod:`callbacks.interruption`). A NaN or
infinite training loss stops ``fit`` with an error naming the step (``--on_nonfinite_loss=skip`` skips such steps
instead: :mod:`callbacks.nonfinite`). A ``fit`` that fails marks its run directory (``failed.txt``).

``--pretrained NAME`` stands for the registry entry's own config and its recorded overrides (so the test runs in the
setting the recorded numbers were measured in) followed by loading its verified weights; any later option still
overrides. A config may build on shared pieces with ``__base__`` (see :mod:`zoo.compose`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import ArgsType, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

import callbacks
import datamodules
import zoo
from callbacks.interruption import exit_code
from callbacks.nonfinite import ACTIONS as NONFINITE_ACTIONS
from callbacks.run_dir import clear_unfinished, continue_run, mark_unfinished, run_dir
from datamodules.cache import atomic_write_text
from zoo.checkpoint_io import load_checkpoint, use_safe_checkpoint_io
from zoo.compose import CONFIG_FLAGS, expand_config_args
from zoo.shipped import CONFIGS, describe_config, is_config_name, list_configs, shipped_config


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


class ZooCLI(LightningCLI):
    """LightningCLI in subclass mode (any zoo model or datamodule) with the ``--pretrained`` option.

    Its Trainer reads checkpoints only through ``zoo.checkpoint_io`` (``weights_only=True``, URLs fetched into the
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
        hparams = load_checkpoint(ckpt_path).get("hyper_parameters", {})
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

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        use_safe_checkpoint_io(trainer)
        if self.subcommand == "fit":
            continue_run(trainer, self.config_init["fit"].get("ckpt_path"))
        if self.subcommand == "predict" and not any(isinstance(c, BasePredictionWriter) for c in trainer.callbacks):
            trainer.callbacks.append(callbacks.PredictionWriter())  # predictions are the point of `zoo predict`
        return trainer

    def add_arguments_to_parser(self, parser: Any) -> None:
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
        return super()._instantiate_trainer(config, extra_callbacks)

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
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best)

    def _load_pretrained_weights(self) -> None:
        name = self.config[self.subcommand].get("pretrained")
        if name:
            from zoo.pretrained import load_pretrained_weights

            load_pretrained_weights(self.model, name)

    def before_validate(self) -> None:
        self._load_pretrained_weights()

    def before_test(self) -> None:
        self._load_pretrained_weights()

    def before_predict(self) -> None:
        self._load_pretrained_weights()

    def before_fit(self) -> None:
        self._load_pretrained_weights()  # fine-tuning from a registry checkpoint


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
    from zoo.pretrained import registry_entry

    entry = registry_entry(name)
    # compared in its expanded form: that is what a DDP child finds in sys.argv
    inserted = expand_config_args(["--config", str(entry.config_path), *entry.overrides])
    if args[1:1 + len(inserted)] == inserted:
        return args
    return [args[0], *inserted, *args[1:]]


def resolve_config_names(args: list[str]) -> list[str]:
    """``--config NAME`` (``protonet/glyphs``: no ``.yaml``, not a file) becomes the shipped config's path."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in CONFIG_FLAGS and i + 1 < len(out) and is_config_name(out[i + 1]):
            out[i + 1] = str(shipped_config(out[i + 1]))
        elif arg.startswith("--config=") and is_config_name(value := arg.split("=", 1)[1]):
            out[i] = f"--config={shipped_config(value)}"
    return out


def expand_args(args: list[str]) -> list[str]:
    """Everything the zoo adds to LightningCLI's command line, in order: the registry entry's config for
    ``--pretrained``, shipped config names, ``__base__`` composition. Idempotent (DDP re-executes ``sys.argv``)."""
    return expand_config_args(resolve_config_names(expand_pretrained(args)))


def list_configs_command() -> None:
    """``zoo configs``: each shipped config's name (what ``--config`` takes) and the first line of its header."""
    names = list_configs()
    width = max(map(len, names), default=0)
    print(f"Shipped configs in {CONFIGS} (use as: zoo fit --config NAME):")
    for name in names:
        print(f"  {name:<{width}}  {describe_config(name)}")


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


#: Subcommands that read finished runs or the registry instead of training: name -> module with ``main(argv) -> int``.
TOOLS = {"compare": "zoo.compare", "report": "zoo.report", "publish": "zoo.artifacts"}


def main(args: ArgsType = None) -> None:
    """Entry point of the ``zoo`` console script and of ``python -m zoo``; ``args`` as LightningCLI takes them."""
    argv = sys.argv[1:] if args is None else args
    if argv == ["configs"]:
        list_configs_command()
        return
    if isinstance(argv, list) and argv[:1] == ["check"]:
        check(argv[1:])
        return
    if isinstance(argv, list) and argv and argv[0] in TOOLS:
        import importlib

        code = importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
        if code:
            raise SystemExit(code)
        return
    try:
        build_cli(args)
    except SIGTERMException as stop:  # a SystemExit without a code: the shell would read a killed run as success
        raise SystemExit(exit_code(stop)) from None


if __name__ == "__main__":
    main()
