"""Synthetic images.

``synthetic``: random images for benchmarks and tests, uint8 noise of any size, resident in
memory; chosen only by name (``data=synthetic``), never as a stand-in for missing data.
``fashion_synthetic``: SimGAN's synthetic -> real task on Fashion-MNIST (``simulate`` below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import Batch, DataInfo, GANDataModule, ShuffledIndex, seed_for, to_model_space
from gan_lightning.data.mnist import MNISTConfig
from gan_lightning.data.translation import FashionPairsDataModule, disjoint_halves
from gan_lightning.registry import ConfigError
from gan_lightning.schema import DataConfig


@dataclass
class SyntheticConfig(DataConfig):
    name: str = "synthetic"
    image_size: int = 32
    channels: int = 1
    n: int = 10000  # images in the "training split" (the test split has n // 5)
    num_classes: int = 10


class SyntheticDataModule(GANDataModule):
    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return True

    Config = SyntheticConfig
    domain_classifier = True  # random labels: a classifier of them is for timing, not for quality

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        d = self.dcfg
        g = torch.Generator().manual_seed(seed_for(self.seed, 0x5A7))
        shape = (d.channels, d.image_size, d.image_size)
        self.images = torch.randint(0, 256, (d.n, *shape), generator=g, dtype=torch.uint8)
        self.labels = torch.randint(0, d.num_classes, (d.n,), generator=g)
        self.test = (
            torch.randint(0, 256, (max(2, d.n // 5), *shape), generator=g, dtype=torch.uint8),
            torch.randint(0, d.num_classes, (max(2, d.n // 5),), generator=g),
        )
        self.index = ShuffledIndex(d.n, self.seed)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        d = cfg.data
        if d.channels not in (1, 3) or d.image_size < 4 or d.n < 2 or d.num_classes < 1:
            raise ConfigError("bad value in 'data': synthetic needs channels 1 or 3, image_size >= 4, n >= 2")

    @property
    def info(self) -> DataInfo:
        d = self.dcfg
        return DataInfo(
            name="synthetic",
            kind="image",
            shape=(d.channels, d.image_size, d.image_size),
            num_classes=d.num_classes,
            class_names=[str(i) for i in range(d.num_classes)],
        )

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        images, labels = (self.images.cpu(), self.labels.cpu()) if train else self.test
        if size and size != images.shape[-1]:
            images = torch.nn.functional.interpolate(images.float(), size=(size, size)).round().to(torch.uint8)
        return images, labels

    def training_labels(self) -> Tensor:
        return self.labels

    def move_to(self, device: torch.device) -> None:
        self.images, self.labels = self.images.to(device), self.labels.to(device)

    def global_batch(self, step: int, size: int) -> Batch:
        idx = self.index.take(step * size, size).to(self.images.device)
        return Batch(to_model_space(self.images[idx]), self.labels[idx])


# ----------------------------------------------------------------------------- synthetic -> real
# The fixed "simulator" of fashion_synthetic (a stand-in for a renderer's systematic flaws): in [0, 1],
# s = q(OFFSET + CONTRAST * blocks(x) + TEXTURE * checker), clamped to [0, 1], where blocks(x) is the
# mean of each 2x2 block repeated over the block, checker is +1/-1 on alternate 2x2 blocks (a fixed
# texture), and q quantises to LEVELS grey levels.
SIM_BLOCK, SIM_CONTRAST, SIM_OFFSET, SIM_TEXTURE, SIM_LEVELS = 2, 0.6, 0.2, 0.05, 8


def simulate(images_u8: Tensor) -> Tensor:
    """uint8 images (N, C, H, W), H and W even -> their uint8 "synthetic" renderings (float64 inside)."""
    x = images_u8.double() / 255
    k = SIM_BLOCK
    blocks = F.avg_pool2d(x, k).repeat_interleave(k, -2).repeat_interleave(k, -1)
    h, w = x.shape[-2:]
    rows, cols = torch.arange(h)[:, None] // k, torch.arange(w)[None, :] // k
    checker = 1.0 - 2.0 * ((rows + cols) % 2).double()
    v = (SIM_OFFSET + SIM_CONTRAST * blocks + SIM_TEXTURE * checker).clamp(0, 1)
    levels = torch.round(v * (SIM_LEVELS - 1)) / (SIM_LEVELS - 1)
    return torch.round(levels * 255).to(torch.uint8)


@dataclass
class FashionSyntheticConfig(MNISTConfig):
    name: str = "fashion_synthetic"
    flip: bool = False


class FashionSyntheticDataModule(FashionPairsDataModule):
    """SimGAN's setting on Fashion-MNIST: A = ``simulate``d images of one half of the training set
    (labels known, like a simulator's annotations), B = unlabelled real images of the other half
    (unpaired). The test split keeps each synthetic image's real original (the truth)."""

    Config = FashionSyntheticConfig
    paired = False
    true_test_pairs = True
    baseline = "synthetic"  # the raw synthetic image, scored as a translation: what refining must beat

    # validate: Fashion-MNIST's image_size 28 or 32, both even, as the 2x2 blocks need

    def prepare(self) -> None:
        if self._loaded:
            return
        images, labels = self.fashion.training_split()
        self.half_a, self.half_b = disjoint_halves(len(images))
        self.train_a, self.train_b = simulate(images[self.half_a]), images[self.half_b]
        self.train_y = labels[self.half_a]
        self._loaded = True

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """Real (B-domain) images of a split: the domain classifier and FID reference use them."""
        return self.fashion.split(train, size)

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = self.fashion.split(train=False)
        return simulate(images), images, labels

    def domain_views(self) -> dict[str, Any]:
        return {"b": self.fashion}  # the real images' classifier (it reads refined ones too)

    def baseline_translation(self, a_u8: Tensor) -> Tensor:
        """The synthetic images themselves, [0, 1]."""
        return a_u8.float() / 255
