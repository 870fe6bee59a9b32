"""Nets of the inference models (BiGAN, ALI, AAE): the encoder E: x -> z, the joint critic
D(x, z) of BiGAN/ALI, and the critic on codes of the AAE.

Each reuses the registered trunks: E is the ``nets.d`` critic with a linear code layer in place
of its logit head, D(x, z)'s x-part is the ``nets.d`` critic's trunk and its z-part an MLP trunk,
and the AAE's critic is the MLP critic on vectors of size z_dim.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from gan_lightning.nets import DISCRIMINATORS, build_discriminator, capability
from gan_lightning.nets.layers import Critic
from gan_lightning.registry import ConfigError

Shape = tuple[int, ...]


class Encoder(nn.Module):
    """E(x) = linear(features(x)): ``out`` numbers per sample (z, or ALI's (mu, log sigma)). The
    code layer keeps PyTorch's initialisation."""

    def __init__(self, trunk: Critic, out: int):
        super().__init__()
        self.trunk = trunk
        self.trunk.head = nn.Identity()  # the code layer replaces the logit head
        self.code = nn.Linear(trunk.feature_dim, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.code(self.trunk.features(x))


def _mlp_critic(nets: Any, size: int, layers: int) -> Critic:
    """The registered MLP critic on vectors of ``size``: ``layers`` x ``nets.mlp_hidden`` LeakyReLU units (not the
    MLP critic's own ``nets.mlp_d_*`` sizes and maxout units, which are the x-trunk's), no normalisation, no
    minibatch layer."""
    overrides: dict[str, Any] = {"d": "mlp", "d_minibatch": "none", "mlp_layers": layers}
    overrides.update(mlp_d_layers=layers, mlp_d_hidden=int(nets.mlp_hidden), mlp_maxout=0)  # plain LeakyReLU units
    mlp = OmegaConf.merge(nets, overrides)
    return build_discriminator(mlp, (size,), "none")


def check_encoder_trunk(nets: Any) -> None:
    """A code must not depend on the rest of the batch: refuse a ``nets.d`` whose own layers couple
    the samples (``batch_coupled``, e.g. the style critic's minibatch stddev)."""
    if capability(DISCRIMINATORS.get(nets.d, "nets.d"), "batch_coupled"):
        raise ConfigError(
            f"bad value for 'nets.d': the encoder E is built on the nets.d trunk, and the '{nets.d}' critic has "
            "a minibatch layer of its own, so a code E(x) would depend on the rest of its batch; use nets.d=dcgan"
        )


def build_encoder(nets: Any, shape: Shape, out: int, norm: str) -> Encoder:
    """E on the ``nets.d`` trunk at ``nets.d_width`` with normalisation ``norm`` (no minibatch
    layer: a code must not depend on the rest of the batch)."""
    check_encoder_trunk(nets)
    return Encoder(build_discriminator(OmegaConf.merge(nets, {"d_minibatch": "none"}), shape, norm), out)


def joint(x: Tensor, z: Tensor) -> Tensor:
    """The pair (x, z) as one row per sample, [x flattened, z]: what the joint critic judges, so
    the penalties interpolate and differentiate pairs as one input."""
    return torch.cat([x.flatten(1), z], dim=1)


class JointCritic(Critic):
    """D(x, z) of BiGAN / ALI (Donahue et al. 2017; Dumoulin et al. 2017): an x-trunk, a z-trunk,
    and a joint MLP on their concatenated features whose head gives one logit. Its input is a
    ``joint`` row [x flattened, z]."""

    def __init__(self, x_trunk: Critic, x_shape: Shape, z_trunk: Critic, top: Critic):
        super().__init__()
        self.x_shape, self.x_numel = tuple(x_shape), math.prod(x_shape)
        self.x_trunk, self.z_trunk, self.top = x_trunk, z_trunk, top
        self.x_trunk.head, self.z_trunk.head = nn.Identity(), nn.Identity()  # the joint MLP's head replaces them
        self.feature_dim, self.head = top.feature_dim, top.head

    def split(self, pair: Tensor) -> tuple[Tensor, Tensor]:
        """A ``joint`` row back to (x, z)."""
        return pair[:, : self.x_numel].reshape(-1, *self.x_shape), pair[:, self.x_numel :]

    def features(self, pair: Tensor) -> Tensor:
        x, z = self.split(pair)
        return self.top.features(torch.cat([self.x_trunk.features(x), self.z_trunk.features(z)], dim=1))

    def forward(self, pair: Tensor) -> Tensor:
        return self.head(self.features(pair)).squeeze(1)


def build_joint_critic(nets: Any, shape: Shape, z_dim: int, norm: str) -> JointCritic:
    """x-trunk: the ``nets.d`` critic (normalisation ``norm``, minibatch layer if asked); z-trunk:
    the MLP critic (``nets.mlp_layers`` x ``nets.mlp_hidden``); joint part: one hidden layer of
    ``nets.mlp_hidden`` units and the logit head. The MLPs are not normalised."""
    x_trunk = build_discriminator(nets, shape, norm)
    z_trunk = _mlp_critic(nets, z_dim, int(nets.mlp_layers))
    top = _mlp_critic(nets, x_trunk.feature_dim + z_trunk.feature_dim, 1)
    return JointCritic(x_trunk, shape, z_trunk, top)


def build_code_critic(nets: Any, z_dim: int, norm: str) -> Critic:
    """The AAE's D on codes: the registered MLP critic on vectors of size ``z_dim``."""
    return build_discriminator(OmegaConf.merge(nets, {"d": "mlp"}), (z_dim,), norm)
