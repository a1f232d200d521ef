"""Metazoo: meta-learning and few-shot systems as LightningModules, with a registry of pretrained checkpoints."""

from typing import Any

# Every public name loads on first use, so `import zoo` (and with it the `zoo` command's listing subcommands:
# `zoo --help`, `zoo configs`, `zoo pretrained`, `zoo compare`, `zoo report`) imports neither Lightning nor the
# systems' heavy dependencies (transformers, FAISS, BoTorch): `zoo.RAML` imports zoo.raml when it is first touched.
_LAZY = {"ANIL": "zoo.maml", "Conv4": "zoo.backbones", "EpisodicModule": "zoo.episodic", "GPAM": "zoo.gpam",
         "MAML": "zoo.maml", "MetaDMoE": "zoo.meta_dmoe", "MetaRTL": "zoo.meta_rtl", "NAPModule": "zoo.nap",
         "ProtoNet": "zoo.protonet", "ProtoNOTA": "zoo.gpam", "RAML": "zoo.raml", "ResNet12": "zoo.backbones",
         "TextEncoder": "zoo.text_encoder", "WandbLogger": "zoo.wandb_logger", "list_pretrained": "zoo.pretrained",
         "load_pretrained": "zoo.pretrained", "pretrained_table": "zoo.pretrained"}

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
