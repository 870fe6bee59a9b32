"""GAN variants by name (``model.name``)."""

from __future__ import annotations

from omegaconf import DictConfig

from gan_lightning.data.base import DataInfo
from gan_lightning.models import biggan as _biggan  # noqa: F401  (registers biggan)
from gan_lightning.models import conditional as _conditional  # noqa: F401  (registers cgan, acgan, infogan)
from gan_lightning.models import discogan as _discogan  # noqa: F401  (registers discogan)
from gan_lightning.models import energy as _energy  # noqa: F401  (registers ebgan, began)
from gan_lightning.models import inference as _inference  # noqa: F401  (registers bigan, ali, aae)
from gan_lightning.models import progan as _progan  # noqa: F401  (registers progan)
from gan_lightning.models import simgan as _simgan  # noqa: F401  (registers simgan)
from gan_lightning.models import srgan as _srgan  # noqa: F401  (registers srgan)
from gan_lightning.models import stargan as _stargan  # noqa: F401  (registers stargan)
from gan_lightning.models import stylegan as _stylegan  # noqa: F401  (registers stylegan)
from gan_lightning.models import translation as _translation  # noqa: F401  (registers pix2pix, cyclegan)
from gan_lightning.models import vaegan as _vaegan  # noqa: F401  (registers vaegan)
from gan_lightning.models.base import GANModule
from gan_lightning.registry import MODELS


def build_model(cfg: DictConfig, info: DataInfo) -> GANModule:
    return MODELS.get(cfg.model.name, "model.name")(cfg, info)


__all__ = ["MODELS", "GANModule", "build_model"]
