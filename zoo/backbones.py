"""Image backbones for few-shot learning: Conv-4 and ResNet-12.

Every backbone maps ``[B, C, H, W]`` to ``[B, out_dim]`` and exposes ``out_dim``; heads and losses only see that
contract (timm's ``forward_features`` idea without the head). Text encoders live in ``zoo.text_encoder``.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Conv3x3 - BatchNorm - ReLU - MaxPool2: the block of Vinyals et al. (2016) and Snell et al. (2017)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class Conv4(nn.Module):
    """The four-block ConvNet of the few-shot literature (64 channels per block by default).

    Args:
        in_channels: 1 for Omniglot / Glyphs, 3 for natural images.
        hidden: channels of every block.
        pooling: ``"flatten"`` keeps the whole last feature map (Snell et al.: 1600-d on 84x84, 64-d on 28x28);
            ``"avg"`` global-average-pools it to ``hidden`` dims, as the official SuSana Distancia code does.
        image_size: input side, needed to compute ``out_dim`` for ``"flatten"``.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, pooling: str = "flatten", image_size: int = 28):
        super().__init__()
        if pooling not in ("flatten", "avg"):
            raise ValueError(f"Conv4 pooling must be 'flatten' or 'avg', got {pooling!r}")
        self.encoder = nn.Sequential(conv_block(in_channels, hidden), conv_block(hidden, hidden),
                                     conv_block(hidden, hidden), conv_block(hidden, hidden))
        self.pooling = pooling
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"Conv4: image_size {image_size} is too small for four 2x poolings")
        self.out_dim = hidden * (side * side if pooling == "flatten" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return h.flatten(1) if self.pooling == "flatten" else h.mean(dim=(2, 3))


class ResNet12Block(nn.Module):
    """Three 3x3 convolutions with a 1x1 shortcut, LeakyReLU(0.1), then 2x max-pooling (Lee et al., MetaOptNet)."""

    def __init__(self, cin: int, cout: int, drop_rate: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))
        # Plain dropout in place of DropBlock: DropBlock's schedule is a training detail of TADAM/MetaOptNet
        # that the few-shot losses here do not depend on.
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(self.body(x) + self.shortcut(x)))


class ResNet12(nn.Module):
    """ResNet-12 (four residual blocks, channels 64-128-256-512 by default), global-average-pooled.

    Args:
        in_channels: image channels.
        channels: widths of the four blocks; (64, 160, 320, 640) is the wider TADAM/FEAT variant.
        drop_rate: dropout after each block.
    """

    def __init__(self, in_channels: int = 3, channels: tuple[int, int, int, int] = (64, 128, 256, 512),
                 drop_rate: float = 0.0):
        super().__init__()
        blocks, cin = [], in_channels
        for cout in channels:
            blocks.append(ResNet12Block(cin, cout, drop_rate))
            cin = cout
        self.encoder = nn.Sequential(*blocks)
        self.out_dim = channels[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).mean(dim=(2, 3))
