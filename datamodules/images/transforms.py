"""Image transforms in plain torch (there is no torchvision here), applied to whole uint8 batches.

Images are kept as uint8 ``[B, C, H, W]`` in memory (four times smaller than float) and converted per episode,
which is one vectorised call instead of one PIL round-trip per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Normalisation constants used by the papers' data pipelines.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = (0.5,), (0.5,)


class ImageTransform:
    """uint8 ``[B, C, H, W]`` -> normalised float, with optional train-time augmentation.

    Args:
        mean, std: per-channel normalisation (length 1 or C).
        augment: random crop after reflect-padding by ``pad`` pixels, plus a horizontal flip when ``flip``.
            Augmentation draws from torch's global generator of the process that runs it (a data-loader worker
            is seeded by Lightning's ``seed_everything(workers=True)``); episode *content* never depends on it.
        pad: padding in pixels for the random crop.
        flip: also flip horizontally (off for characters, where a mirror image is a different glyph).
    """

    def __init__(self, mean: tuple[float, ...] = GRAY_MEAN, std: tuple[float, ...] = GRAY_STD,
                 augment: bool = False, pad: int = 4, flip: bool = False):
        if len(mean) != len(std):
            raise ValueError(f"ImageTransform: mean has {len(mean)} channels, std has {len(std)}")
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augment, self.pad, self.flip = augment, pad, flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError(f"ImageTransform expects uint8 [B, C, H, W], got {x.dtype} {tuple(x.shape)}")
        y = x.float().div_(255.0)
        if self.augment:
            y = random_crop(y, self.pad)
            if self.flip:
                mask = torch.rand(len(y)) < 0.5
                y[mask] = y[mask].flip(-1)
        return (y - self.mean) / self.std


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad by ``pad`` and crop back to the input size at a random offset per image."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,))
    dx = torch.randint(0, 2 * pad + 1, (b,))
    rows = (dy.view(b, 1) + torch.arange(h)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w)).view(b, 1, 1, w)
    idx_b = torch.arange(b).view(b, 1, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_b, rows, cols].squeeze(1).permute(0, 3, 1, 2).contiguous()


def resize_center_crop(img, size: int, resize: int | None = None):
    """PIL image -> PIL image: shorter side to ``resize`` (default ``size``), then a centre ``size`` crop.

    The papers' Conv-4 pipelines use resize 92 then crop 84 (``resize=92, size=84``).
    """
    from PIL import Image

    resize = resize or size
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))
