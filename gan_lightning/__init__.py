"""gan_lightning: GAN experiments on PyTorch Lightning.

What a script composes, importable from the top (loaded on first use, so ``import
gan_lightning`` stays cheap)::

    from gan_lightning import load_config, build_datamodule, build_model, metrics_callback

Models (``GAN``, ``WGANGP``, ``CycleGAN``, ...) are LightningModules for a plain
``lightning.Trainer``; ``load_model(ckpt)`` rebuilds one from a checkpoint. The whole recipe of
``gan-lightning train`` is ``gan_lightning.train.train(cfg, callbacks=[...])`` (no name here is
also a submodule's, so ``from gan_lightning import train`` stays the module).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # config
    "load_config": "gan_lightning.config",
    "known_experiments": "gan_lightning.config",
    # models
    "build_model": "gan_lightning.models",
    "MODELS": "gan_lightning.models",  # importing the models fills the registry
    "GANModule": "gan_lightning.models.base",
    "GAN": "gan_lightning.models.gan",
    "DCGAN": "gan_lightning.models.gan",
    "WGAN": "gan_lightning.models.gan",
    "WGANGP": "gan_lightning.models.gan",
    "LSGAN": "gan_lightning.models.gan",
    "SNGAN": "gan_lightning.models.gan",
    "DRAGAN": "gan_lightning.models.gan",
    "CGAN": "gan_lightning.models.conditional",
    "ACGAN": "gan_lightning.models.conditional",
    "InfoGAN": "gan_lightning.models.conditional",
    "Pix2Pix": "gan_lightning.models.translation",
    "CycleGAN": "gan_lightning.models.translation",
    "StarGAN": "gan_lightning.models.stargan",
    "DiscoGAN": "gan_lightning.models.discogan",
    "SimGAN": "gan_lightning.models.simgan",
    "SRGAN": "gan_lightning.models.srgan",
    "EBGAN": "gan_lightning.models.energy",
    "BEGAN": "gan_lightning.models.energy",
    "StyleGAN": "gan_lightning.models.stylegan",
    "BigGAN": "gan_lightning.models.biggan",
    "ProGAN": "gan_lightning.models.progan",
    "BiGAN": "gan_lightning.models.inference",
    "ALI": "gan_lightning.models.inference",
    "AAE": "gan_lightning.models.inference",
    "VAEGAN": "gan_lightning.models.vaegan",
    "load_model": "gan_lightning.checkpoint",
    # data
    "build_datamodule": "gan_lightning.data",
    "DATAMODULES": "gan_lightning.data",
    "GANDataModule": "gan_lightning.data.base",
    "ToyDataModule": "gan_lightning.data.toy",
    "MNISTDataModule": "gan_lightning.data.mnist",
    "FashionMNISTDataModule": "gan_lightning.data.mnist",
    "CelebADataModule": "gan_lightning.data.celeba",
    "FashionEdgesDataModule": "gan_lightning.data.translation",
    "PairedFolderDataModule": "gan_lightning.data.translation",
    "UnpairedFolderDataModule": "gan_lightning.data.translation",
    "FashionDomainsDataModule": "gan_lightning.data.domains",
    "SuperResDataModule": "gan_lightning.data.superres",
    "FashionSyntheticDataModule": "gan_lightning.data.synthetic",
    "SyntheticDataModule": "gan_lightning.data.synthetic",
    "StackedDataModule": "gan_lightning.data.stacked",
    "StackedMNISTDataModule": "gan_lightning.data.stacked",
    # callbacks and metrics
    "metrics_callback": "gan_lightning.train",
    "GenerativeMetrics": "gan_lightning.callbacks.metrics",
    "TranslationMetrics": "gan_lightning.callbacks.translation",
    "SampleGrids": "gan_lightning.callbacks.samples",
    "Evaluator": "gan_lightning.metrics.evaluator",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from gan_lightning.callbacks.metrics import GenerativeMetrics
    from gan_lightning.callbacks.samples import SampleGrids
    from gan_lightning.callbacks.translation import TranslationMetrics
    from gan_lightning.checkpoint import load_model
    from gan_lightning.config import known_experiments, load_config
    from gan_lightning.data import DATAMODULES, build_datamodule
    from gan_lightning.data.base import GANDataModule
    from gan_lightning.data.celeba import CelebADataModule
    from gan_lightning.data.domains import FashionDomainsDataModule
    from gan_lightning.data.mnist import FashionMNISTDataModule, MNISTDataModule
    from gan_lightning.data.stacked import StackedDataModule, StackedMNISTDataModule
    from gan_lightning.data.superres import SuperResDataModule
    from gan_lightning.data.synthetic import FashionSyntheticDataModule, SyntheticDataModule
    from gan_lightning.data.toy import ToyDataModule
    from gan_lightning.data.translation import FashionEdgesDataModule, PairedFolderDataModule, UnpairedFolderDataModule
    from gan_lightning.metrics.evaluator import Evaluator
    from gan_lightning.models import MODELS, build_model
    from gan_lightning.models.base import GANModule
    from gan_lightning.models.biggan import BigGAN
    from gan_lightning.models.conditional import ACGAN, CGAN, InfoGAN
    from gan_lightning.models.discogan import DiscoGAN
    from gan_lightning.models.energy import BEGAN, EBGAN
    from gan_lightning.models.gan import DCGAN, DRAGAN, GAN, LSGAN, SNGAN, WGAN, WGANGP
    from gan_lightning.models.inference import AAE, ALI, BiGAN
    from gan_lightning.models.progan import ProGAN
    from gan_lightning.models.simgan import SimGAN
    from gan_lightning.models.srgan import SRGAN
    from gan_lightning.models.stargan import StarGAN
    from gan_lightning.models.stylegan import StyleGAN
    from gan_lightning.models.translation import CycleGAN, Pix2Pix
    from gan_lightning.models.vaegan import VAEGAN
    from gan_lightning.train import metrics_callback


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gan_lightning' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
