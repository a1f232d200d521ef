"""Metazoo: meta-learning and few-shot systems as LightningModules, with a registry of pretrained checkpoints."""

from typing import Any

# Every public name loads on first use, so `import zoo` (and with it the `zoo` command's listing subcommands:
# `zoo --help`, `zoo configs`, `zoo pretrained`, `zoo compare`, `zoo report`) imports neither Lightning nor the
# systems' heavy dependencies (transformers, FAISS, BoTorch): `zoo.RAML` imports zoo.methods.raml when it is first
# touched. The public name is the stable one: configs say `class_path: zoo.ProtoNet` whatever folder it lives in.
_LAZY = {"ANIL": "zoo.methods.maml", "GPAM": "zoo.methods.gpam", "MAML": "zoo.methods.maml",
         "MetaDMoE": "zoo.methods.meta_dmoe", "MetaRTL": "zoo.methods.meta_rtl", "NAPModule": "zoo.methods.nap",
         "ProtoNet": "zoo.methods.protonet", "ProtoNOTA": "zoo.methods.gpam", "RAML": "zoo.methods.raml",
         "Conv4": "zoo.nn.backbones", "ResNet12": "zoo.nn.backbones", "TextEncoder": "zoo.nn.text_encoder",
         "EpisodicModule": "zoo.training.episodic", "WandbLogger": "zoo.cli.wandb_logger",
         "list_pretrained": "zoo.hub.pretrained", "load_pretrained": "zoo.hub.pretrained",
         "pretrained_table": "zoo.hub.pretrained"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's own names and every lazily loaded public one (``dir(zoo)`` shows the systems unloaded)."""
    return sorted({*globals(), *__all__})
