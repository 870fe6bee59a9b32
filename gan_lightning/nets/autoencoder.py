"""The autoencoder critic of the energy-based GANs (EBGAN, BEGAN): D(x) is the reconstruction
error of x. Its encoder is the critic trunk chosen by ``nets.d`` and its decoder the generator
net of the same family, so toy data gets MLPs and images get DCGAN convolutions."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from torch import Tensor, nn

from gan_lightning.nets import build_discriminator, build_generator
from gan_lightning.registry import ConfigError

DISTANCES = ("mse", "l1")


class AutoencoderCritic(nn.Module):
    """x -> encoder features -> code -> decoder -> x'; returns (energy per sample, code).
    The energy is the mean over dimensions of (x' - x)^2 (``mse``) or |x' - x| (``l1``)."""

    def __init__(self, encoder: nn.Module, feature_dim: int, decoder: nn.Module, code_dim: int, distance: str):
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"unknown reconstruction distance '{distance}'; one of {', '.join(DISTANCES)}")
        self.encoder, self.decoder, self.distance = encoder, decoder, distance
        self.to_code = nn.Linear(feature_dim, code_dim)

    def encode(self, x: Tensor) -> Tensor:
        return self.to_code(self.encoder.features(x))  # type: ignore[operator]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        code = self.encode(x)
        error = (self.decoder(code) - x).flatten(1)
        energy = error.pow(2).mean(1) if self.distance == "mse" else error.abs().mean(1)
        return energy, code


def build_autoencoder_critic(nets: Any, shape: tuple[int, ...], norm: str, code_dim: int, distance: str) -> nn.Module:
    """Encoder = the ``nets.d`` critic without its head; decoder = the generator net of the same
    name, at D's width and normalisation."""
    encoder = build_discriminator(nets, shape, norm)
    encoder.head = nn.Identity()  # the code layer replaces the logit head
    decoder_nets = OmegaConf.merge(nets, {"g": nets.d, "g_width": nets.d_width, "g_norm": norm})
    decoder = build_generator(decoder_nets, shape, code_dim)
    return AutoencoderCritic(encoder, encoder.feature_dim, decoder, code_dim, distance)
