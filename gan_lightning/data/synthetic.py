"""Random images for benchmarks and tests: uint8 noise of any size, resident in memory.

It is chosen only by name (``data=synthetic``), never as a stand-in for missing data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import Batch, DataInfo, GANDataModule, ShuffledIndex, seed_for, to_model_space
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

    def move_to(self, device: torch.device) -> None:
        self.images, self.labels = self.images.to(device), self.labels.to(device)

    def global_batch(self, step: int, size: int) -> Batch:
        idx = self.index.take(step * size, size).to(self.images.device)
        return Batch(to_model_space(self.images[idx]), self.labels[idx])
