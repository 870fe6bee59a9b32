"""Single-image super-resolution on Fashion-MNIST (``data.name=fashion_superres``).

A = the low-resolution image: each 28x28 garment (B) downsampled ``data.scale`` times (4: to
7x7), B = the image itself; the pairs are the same garment, in training and in the test split
(the truth of every test input is known, so PSNR and SSIM are measured against it).

Downsampling (``data.downsample``):
- ``bicubic`` (default, as Ledig et al. 2017 make their LR images): Keys' cubic convolution
  kernel with a = -0.5 stretched by the scale factor (the antialiased bicubic of MATLAB's
  ``imresize`` and PIL), its weights renormalised where it leaves the image, rounded to uint8;
- ``area``: the mean of each scale x scale block, rounded to uint8.

The bicubic baseline of the metrics upsamples A back with the same kernel (not stretched when
enlarging), clipped to [0, 1]: ``bicubic/psnr``, ``bicubic/ssim``, ``bicubic/fid`` beside the
model's ``ab/...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.mnist import MNISTConfig
from gan_lightning.data.translation import FashionPairsDataModule
from gan_lightning.registry import ConfigError


def downsample(images_u8: Tensor, scale: int, mode: str = "bicubic") -> Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, H / scale, W / scale) (see the module docstring)."""
    x = images_u8.float()
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    if mode == "area":
        out = F.avg_pool2d(x, scale)
    else:  # torch's antialiased bicubic uses a = -0.5 and PIL's border renormalisation
        out = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def bicubic_upsample(images01: Tensor, scale: int) -> Tensor:
    """[0, 1] floats (N, C, h, w) -> (N, C, scale h, scale w): bicubic (a = -0.5), clipped to [0, 1]."""
    x = images01.float()
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


@dataclass
class SuperResConfig(MNISTConfig):
    name: str = "fashion_superres"
    scale: int = 4  # upscaling factor: A is image_size / scale pixels wide (a power of 2)
    downsample: str = "bicubic"  # bicubic (Keys a = -0.5, antialiased, as MATLAB imresize) | area (block means)


class SuperResDataModule(FashionPairsDataModule):
    """Paired (LR, HR) Fashion-MNIST images; labels are the garments' classes."""

    Config = SuperResConfig
    resizes: ClassVar[bool] = True
    baseline: ClassVar[str] = "bicubic"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.paired = True

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        d = cfg.data
        s = int(d.scale)
        if s < 2 or s & (s - 1) or d.image_size % s or d.image_size // s < 2:
            raise ConfigError(
                f"bad value for 'data.scale': a power of 2 (>= 2) that divides data.image_size={d.image_size} "
                f"into at least 2 pixels, got {s}; use data.scale=4 (or 2)"
            )
        if d.downsample not in ("bicubic", "area"):
            raise ConfigError(f"bad value for 'data.downsample': bicubic or area, got '{d.downsample}'")

    @property
    def scale(self) -> int:
        return int(self.dcfg.scale)

    def shape_a(self) -> tuple[int, ...]:
        s = int(self.dcfg.image_size) // self.scale
        return (1, s, s)

    def low_res(self, images_u8: Tensor) -> Tensor:
        return downsample(images_u8, self.scale, str(self.dcfg.downsample))

    def prepare(self) -> None:
        if self._loaded:
            return
        images, labels = self.fashion.training_split()
        self.train_a, self.train_b, self.train_y = self.low_res(images), images, labels
        self._loaded = True

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = self.fashion.split(train=False)
        return self.low_res(images), images, labels

    def domain_views(self) -> dict[str, Any]:
        """B is Fashion-MNIST: FID and label agreement in the Fashion classifier's space."""
        return {"b": self.fashion}

    def baseline_translation(self, a_u8: Tensor) -> Tensor:
        return bicubic_upsample(a_u8.float() / 255, self.scale)
