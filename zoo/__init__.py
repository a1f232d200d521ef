"""Metazoo: meta-learning and few-shot systems as LightningModules, with a registry of pretrained checkpoints."""

from zoo.backbones import Conv4, ResNet12
from zoo.episodic import EpisodicModule
from zoo.pretrained import list_pretrained, load_pretrained
from zoo.protonet import ProtoNet
from zoo.wandb_logger import WandbLogger

__all__ = ["Conv4", "EpisodicModule", "ProtoNet", "ResNet12", "WandbLogger", "list_pretrained", "load_pretrained"]
