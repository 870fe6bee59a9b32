"""2-D Gaussian mixtures with the geometry of the mode-collapse literature.

``ring``: 8 modes on the unit circle at angles 2 pi k / 8, std 0.01; ``grid``: 25 modes at
{-4, -2, 0, 2, 4}^2, std 0.05 (as in VEEGAN, Srivastava et al. 2017, and PacGAN, Lin et al. 2018).
Data is drawn fresh for every batch, from a generator keyed by (seed, step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import Batch, DataInfo, GANDataModule, seed_for
from gan_lightning.registry import ConfigError
from gan_lightning.schema import DataConfig

MIXTURE_STD = {"ring": 0.01, "grid": 0.05}


def mixture_centres(mixture: str) -> Tensor:
    if mixture == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()
    if mixture == "grid":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(axis, axis)
    raise ConfigError(f"bad value for 'data.mixture': ring or grid, got '{mixture}'")


def sample_mixture(centres: Tensor, std: float, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points of the equal-weight mixture and the index of the mode each came from."""
    k = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[k] + std * torch.randn(n, 2, generator=generator), k


@dataclass
class ToyConfig(DataConfig):
    name: str = "toy"
    mixture: str = "ring"  # ring | grid
    std: float = 0.0  # 0: the mixture's standard value (ring 0.01, grid 0.05)
    batch_size: int = 256


class ToyDataModule(GANDataModule):
    Config = ToyConfig

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.centres = mixture_centres(self.dcfg.mixture)
        self.std = float(self.dcfg.std) or MIXTURE_STD[self.dcfg.mixture]

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        if cfg.data.mixture not in MIXTURE_STD:
            raise ConfigError(f"bad value for 'data.mixture': ring or grid, got '{cfg.data.mixture}'")
        if cfg.data.std < 0:
            raise ConfigError(f"bad value for 'data.std': must be >= 0, got {cfg.data.std}")

    @property
    def info(self) -> DataInfo:
        return DataInfo(
            name=f"toy_{self.dcfg.mixture}", kind="toy", shape=(2,), modes=self.centres.tolist(), mode_std=self.std
        )

    def global_batch(self, step: int, size: int) -> Batch:
        g = torch.Generator().manual_seed(seed_for(self.seed, step, 0x7047))
        x, _ = sample_mixture(self.centres, self.std, size, g)
        return Batch(x, torch.full((size,), -1, dtype=torch.long))
