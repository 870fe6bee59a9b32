"""Stacked MNIST-family data (the 1,000-mode benchmark of VEEGAN, Srivastava et al. 2017; unrolled
GAN, Metz et al. 2017; PacGAN, Lin et al. 2018): each sample is three images of the base dataset
stacked as the channels of one colour image, so it shows one of 10^3 class triples ("modes").

``stacked_fashion`` stacks Fashion-MNIST (on the machine through Debian's package), ``stacked_mnist``
stacks MNIST (files or a download). The metric ``stacked`` reads each channel with the base
dataset's domain classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gan_lightning.data.base import Batch, DataInfo, GANDataModule, ShuffledIndex, seed_for, to_model_space
from gan_lightning.data.mnist import FashionMNISTDataModule, MNISTConfig, MNISTDataModule

CHANNELS = 3


@dataclass
class StackedConfig(MNISTConfig):
    name: str = "stacked_fashion"
    image_size: int = 32


class StackedDataModule(GANDataModule):
    """Three independent streams over the base training split, one per channel; the label of a
    stack is its mode, 100 c_0 + 10 c_1 + c_2."""

    Config = StackedConfig
    base_cls: type[MNISTDataModule] = FashionMNISTDataModule
    base_name = "fashion_mnist"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        base_cfg = cast(DictConfig, OmegaConf.merge(cfg, {"data": {"name": self.base_name}}))
        self.channel_datamodule = self.base_cls(base_cfg)  # what the 'stacked' metric classifies with
        self._streams: list[ShuffledIndex] = []

    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return True

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        cls.base_cls.validate(cfg)

    @property
    def info(self) -> DataInfo:
        s = int(self.dcfg.image_size)
        names = [f"{a}{b}{c}" for a in range(10) for b in range(10) for c in range(10)]
        return DataInfo(self.dcfg.name, "image", (CHANNELS, s, s), num_classes=1000, class_names=names)

    def prepare(self) -> None:
        self.channel_datamodule.prepare()
        if not self._streams:
            assert self.channel_datamodule._train is not None  # loaded by prepare()
            n = len(self.channel_datamodule._train[0])
            self._streams = [ShuffledIndex(n, seed_for(self.seed, 0x57AC, c)) for c in range(CHANNELS)]

    def move_to(self, device: torch.device) -> None:
        self.channel_datamodule.move_to(device)

    @staticmethod
    def stack(images: Tensor, labels: Tensor, idx: list[Tensor]) -> tuple[Tensor, Tensor]:
        """(N, 3, S, S) stacks of ``images[idx[c]]`` and their modes."""
        x = torch.cat([images[i] for i in idx], dim=1)
        y = labels[idx[0]] * 100 + labels[idx[1]] * 10 + labels[idx[2]]
        return x, y

    def global_batch(self, step: int, size: int) -> Batch:
        self.prepare()
        images, labels = self.channel_datamodule._train  # type: ignore[misc]
        idx = [s.take(step * size, size).to(images.device) for s in self._streams]
        x, y = self.stack(images, labels, idx)
        return Batch(to_model_space(x), y)

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """A fixed stacking of the base split (as many stacks as base images)."""
        images, labels = self.channel_datamodule.split(train, size)
        g = torch.Generator().manual_seed(seed_for(0x57AC, int(train)))
        idx = [torch.randperm(len(images), generator=g) for _ in range(CHANNELS)]
        return self.stack(images, labels, idx)


class StackedMNISTDataModule(StackedDataModule):
    base_cls = MNISTDataModule
    base_name = "mnist"
