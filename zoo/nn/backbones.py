"""Image backbones, their one home: Conv-4, ResNet-12, any Hugging Face vision model (:class:`HFImageEncoder`), and
:class:`BackboneWithHead`, a backbone with the linear head MAML/ANIL and Meta-DMoE adapt.

Every backbone maps ``[B, C, H, W]`` to ``[B, out_dim]`` and exposes ``out_dim``; heads and losses only see that
contract (timm's ``forward_features`` idea without the head). Text encoders live in ``zoo.nn.text_encoder``, the
relation encoder in ``zoo.nn.relation_encoder``.

:class:`HFImageEncoder` reads ``AutoModel.from_pretrained(model_dir)`` (ResNet, ConvNeXt, ViT, DINOv2, ...) from a
local directory; the feature of an image is the model's ``pooler_output`` when it has one (ResNet's global average
pool, ViT's pooled CLS token), else the mean of ``last_hidden_state`` over tokens or positions. Meta-DMoE's official
experts and student are ImageNet ResNet-50 / DenseNet-121 loaded this way (``MetaDMoE(fresh_init=False)`` keeps
their weights).
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


class BackboneWithHead(nn.Module):
    """``head(backbone(x))``: the network whose parameters the inner loop adapts (names ``backbone.*``, ``head.*``).

    Args:
        backbone: maps ``[B, ...]`` to ``[B, backbone.out_dim]``.
        n_way: outputs of the linear head (the episode's local labels 0..N-1).
        head_init: ``"normal"`` (weights N(0, 1), bias 0: the official code's Omniglot head, also learn2learn's),
            ``"xavier"`` (Glorot-uniform weights, bias 0: the official miniImageNet head) or ``"zeros"``
            (all-zero head, the choice of several later MAML variants, e.g. Triantafillou et al.'s proto-MAML).
            [INTERP] The default is ``"xavier"``: with our Conv-4's 64-d flattened features a N(0, 1) head starts
            at a query loss near 17 (measured on Glyphs), which costs much of a CPU training budget to undo.
    """

    def __init__(self, backbone: nn.Module, n_way: int, head_init: str = "xavier"):
        super().__init__()
        if head_init not in ("normal", "xavier", "zeros"):
            raise ValueError(f"head_init must be 'normal', 'xavier' or 'zeros', got {head_init!r}")
        out_dim = getattr(backbone, "out_dim", None)
        if not isinstance(out_dim, int):
            raise ValueError(f"the backbone ({type(backbone).__name__}) must expose an int out_dim for the head")
        self.backbone = backbone
        self.head = nn.Linear(out_dim, n_way)
        {"normal": nn.init.normal_, "xavier": nn.init.xavier_uniform_, "zeros": nn.init.zeros_}[head_init](
            self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
