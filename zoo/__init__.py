"""Metazoo: meta-learning and few-shot systems as LightningModules, with a registry of pretrained checkpoints."""

from typing import Any

from zoo.backbones import Conv4, ResNet12
from zoo.episodic import EpisodicModule
from zoo.pretrained import list_pretrained, load_pretrained
from zoo.protonet import ProtoNet
from zoo.wandb_logger import WandbLogger

# Systems with heavy dependencies (transformers, FAISS, BoTorch) load on first use, so `import zoo` and the image
# systems stay fast: `zoo.RAML` imports zoo.raml when it is first touched.
_LAZY = {"MAML": "zoo.maml", "ANIL": "zoo.maml", "RAML": "zoo.raml", "TextEncoder": "zoo.text_encoder", "NAPModule": "zoo.nap",
         "GPAM": "zoo.gpam", "ProtoNOTA": "zoo.gpam", "MetaRTL": "zoo.meta_rtl", "MetaDMoE": "zoo.meta_dmoe"}

__all__ = ["ANIL", "Conv4", "EpisodicModule", "GPAM", "MAML", "MetaDMoE", "MetaRTL", "NAPModule", "ProtoNet", "ProtoNOTA", "RAML", "ResNet12", "TextEncoder", "WandbLogger",
           "list_pretrained", "load_pretrained"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
