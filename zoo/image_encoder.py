"""An image backbone from any Hugging Face vision model directory (``save_pretrained`` output), offline.

``AutoModel.from_pretrained(model_dir)`` (ResNet, ConvNeXt, ViT, DINOv2, ...); the feature of an image is the
model's ``pooler_output`` when it has one (ResNet's global average pool, ViT's pooled CLS token), else the mean of
``last_hidden_state`` over tokens or positions. It keeps the backbone contract of ``zoo.backbones``: ``[B, C, H, W]``
normalised images in, ``[B, out_dim]`` out, ``out_dim`` an int. Meta-DMoE's official experts and student are
ImageNet ResNet-50 / DenseNet-121 loaded this way (``MetaDMoE(fresh_init=False)`` keeps their weights).
"""

from __future__ import annotations

import torch
from torch import nn


class HFImageEncoder(nn.Module):
    """A Hugging Face vision model as a feature extractor.

    Args:
        model_dir: a local directory written by ``save_pretrained`` (nothing is downloaded).
        image_size: side of the images it will see, used once to measure ``out_dim`` (224 for ImageNet models).
        channels: image channels (3 for RGB models).
    """

    def __init__(self, model_dir: str, image_size: int = 224, channels: int = 3):
        super().__init__()
        from pathlib import Path

        if not (Path(model_dir).expanduser() / "config.json").is_file():
            raise FileNotFoundError(f"HFImageEncoder: {model_dir} holds no config.json; expected a directory "
                                    "written by save_pretrained (an offline copy of the model)")
        from transformers import AutoModel

        self.init_args = {"model_dir": model_dir, "image_size": image_size, "channels": channels}
        self.model = AutoModel.from_pretrained(str(Path(model_dir).expanduser()))
        with torch.no_grad():
            was = self.model.training
            self.model.eval()
            self.out_dim = int(self(torch.zeros(1, channels, image_size, image_size)).shape[1])
            self.model.train(was)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        h = out.last_hidden_state
        return h.flatten(2).mean(-1) if h.dim() == 4 else h.mean(1)  # [B, C, H, W] maps or [B, T, d] tokens
