"""DataModules by name (``data.name``)."""

from __future__ import annotations

from omegaconf import DictConfig

from gan_lightning.data.base import Batch, DataInfo, GANDataModule
from gan_lightning.data.celeba import CelebADataModule
from gan_lightning.data.domains import FashionDomainsDataModule
from gan_lightning.data.mnist import FashionMNISTDataModule, MissingDataError, MNISTDataModule
from gan_lightning.data.stacked import StackedDataModule, StackedMNISTDataModule
from gan_lightning.data.superres import SuperResDataModule
from gan_lightning.data.synthetic import FashionSyntheticDataModule, SyntheticDataModule
from gan_lightning.data.toy import ToyDataModule
from gan_lightning.data.translation import FashionEdgesDataModule, PairedFolderDataModule, UnpairedFolderDataModule
from gan_lightning.registry import Registry

DATAMODULES: Registry[type[GANDataModule]] = Registry("dataset")
DATAMODULES.register("toy")(ToyDataModule)
DATAMODULES.register("mnist")(MNISTDataModule)
DATAMODULES.register("fashion_mnist")(FashionMNISTDataModule)
DATAMODULES.register("celeba")(CelebADataModule)
DATAMODULES.register("stacked_fashion")(StackedDataModule)
DATAMODULES.register("stacked_mnist")(StackedMNISTDataModule)
DATAMODULES.register("synthetic")(SyntheticDataModule)
DATAMODULES.register("fashion_edges")(FashionEdgesDataModule)
DATAMODULES.register("fashion_domains")(FashionDomainsDataModule)
DATAMODULES.register("paired_folder")(PairedFolderDataModule)
DATAMODULES.register("unpaired_folder")(UnpairedFolderDataModule)
DATAMODULES.register("fashion_superres")(SuperResDataModule)
DATAMODULES.register("fashion_synthetic")(FashionSyntheticDataModule)


def build_datamodule(cfg: DictConfig) -> GANDataModule:
    return DATAMODULES.get(cfg.data.name, "data.name")(cfg)


__all__ = ["DATAMODULES", "Batch", "DataInfo", "GANDataModule", "MissingDataError", "build_datamodule"]
