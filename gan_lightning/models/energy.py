"""Energy-based GANs on the shared loop: D is an autoencoder whose reconstruction error is the
energy (low on data, high on samples). Both use the registered ``energy`` loss (D: E[e(x)],
G: E[e(G(z))]) and add only what differs through the loop's hooks:

- EBGAN (Zhao et al. 2017): D's hinge on the fakes' energy, max(0, m - e(G(z))), and the
  optional pulling-away term on the encoder's codes of G's samples.
- BEGAN (Berthelot et al. 2017): L1 reconstruction energy, D's term -k_t E[e(G(z))] with k_t
  under proportional control towards E[e(G(z))] = gamma E[e(x)], and the convergence measure
  M_global. k_t is a buffer, so it is in every checkpoint and a resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.models.gan import ADAM_DCGAN, DCGAN_NETS, GAN, GANConfig, Judged, Terms, resolve_d_norm
from gan_lightning.nets import GENERATORS, build_generator, capability
from gan_lightning.nets.autoencoder import build_autoencoder_critic
from gan_lightning.registry import MODELS, ConfigError


@dataclass
class EnergyConfig(GANConfig):
    loss: str = "energy"
    code_dim: int = 64  # the autoencoder's code


class EnergyGAN(GAN):
    """Shared by EBGAN and BEGAN: the autoencoder critic and what it cannot combine with."""

    plain_critic = False  # D reconstructs single samples
    energy_critic = True
    distance: ClassVar[str] = "mse"

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        nets, shape = self.cfg.nets, tuple(self.info.shape)
        g = build_generator(nets, shape, self.z_dim)
        d = build_autoencoder_critic(nets, shape, resolve_d_norm(self.cfg), int(self.mcfg.code_dim), self.distance)
        return g, d

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        if m.code_dim < 1:
            raise ConfigError(f"bad value for 'model.code_dim': must be >= 1, got {m.code_dim}")
        if cfg.nets.d_minibatch != "none":
            raise ConfigError(
                f"bad value for 'nets.d_minibatch': model '{m.name}' has an autoencoder critic, whose energy of a "
                "sample must not depend on the rest of its batch; use nets.d_minibatch=none"
            )
        if m.clip > 0:
            raise ConfigError(
                f"bad value for 'model.clip': weight clipping bounds a WGAN critic; model '{m.name}' has an "
                "autoencoder critic whose energy is bounded by its margin or k_t; drop model.clip"
            )
        if capability(GENERATORS.get(cfg.nets.d, "nets.d"), "noise_inputs"):  # the decoder: the generator of D's name
            raise ConfigError(
                f"bad value for 'nets.d': model '{m.name}' decodes with the generator named like its critic, and "
                f"'{cfg.nets.d}' draws noise inputs in every layer, which the autoencoder critic does not feed; "
                "use nets.d=dcgan"
            )

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        """(energy per sample, the encoder's codes)."""
        return self.D(x)


@dataclass
class EBGANConfig(EnergyConfig):
    name: str = "ebgan"
    margin: float = 1.0  # m: D pushes the fakes' energy up to m (in units of the per-dimension MSE)
    pull_away: float = 0.0  # weight of the pulling-away term (the paper's EBGAN-PT uses 0.1)


@MODELS.register("ebgan")
class EBGAN(EnergyGAN):
    """Zhao et al. 2017: L_D = e(x) + max(0, m - e(G(z))), L_G = e(G(z)) [+ lambda_PT f_PT]. The
    energy is the per-dimension mean squared reconstruction error (the paper's is a norm: margins
    are not comparable). Adam lr 2e-4, beta1 0.5 is our choice."""

    Config = EBGANConfig
    defaults: ClassVar[dict[str, Any]] = {"nets": DCGAN_NETS, "optim": ADAM_DCGAN}

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        if cfg.model.margin <= 0 or cfg.model.pull_away < 0:
            raise ConfigError("bad value in 'model': ebgan needs margin > 0 and pull_away >= 0")

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        hinge = F.relu(float(self.mcfg.margin) - fake.out).mean()
        return Terms(hinge, {"d/margin_term": hinge.detach()})

    def g_terms(self, fake: Judged) -> Terms:
        if self.mcfg.pull_away == 0:
            return Terms()
        pt = pulling_away(fake.extra)
        return Terms(float(self.mcfg.pull_away) * pt, {"g/pull_away": pt.detach()})


def pulling_away(codes: Tensor) -> Tensor:
    """f_PT(S) = 1/(N(N-1)) sum_{i != j} cos(S_i, S_j)^2 (Zhao et al. 2017, eq. 6)."""
    n = codes.shape[0]
    unit = F.normalize(codes.flatten(1), dim=1)
    cos2 = (unit @ unit.T).pow(2)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


@dataclass
class BEGANConfig(EnergyConfig):
    name: str = "began"
    gamma: float = 0.5  # diversity ratio E[e(G(z))] / E[e(x)] that k_t steers towards
    lambda_k: float = 0.001  # proportional gain of k_t (Berthelot et al. 2017)
    k_init: float = 0.0


@MODELS.register("began")
class BEGAN(EnergyGAN):
    """Berthelot et al. 2017: L1 reconstruction energy e, L_D = e(x) - k_t e(G(z)), L_G = e(G(z)),
    k_{t+1} = clip(k_t + lambda_k (gamma e(x) - e(G(z))), 0, 1), M_global = e(x) + |gamma e(x) - e(G(z))|.
    No BatchNorm; Adam lr 1e-4, betas (0.5, 0.999), gamma 0.5, lambda_k 0.001, k_0 0 as in the
    paper. The k_t update reads e(x) of the last D step (before D's update) and e(G(z)) of the G
    step (before G's update, after D's): the paper's terms are both at step t's D, so ours mix D_t and
    D_{t+1} (a 0.4 % difference in the balance term measured on a toy step)."""

    Config = BEGANConfig
    distance = "l1"
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {**DCGAN_NETS, "g_norm": "none", "d_norm": "none"},
        "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.999]},
    }
    k: Tensor  # buffers
    real_energy: Tensor

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        self.register_buffer("k", torch.tensor(float(self.mcfg.k_init)))
        # e(x) of the last D step, before D's update, for k_t's update after the G step
        self.register_buffer("real_energy", torch.zeros(()), persistent=False)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        if not (0 < m.gamma <= 1 and m.lambda_k >= 0 and 0 <= m.k_init <= 1):
            raise ConfigError("bad value in 'model': began needs 0 < gamma <= 1, lambda_k >= 0, 0 <= k_init <= 1")

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        with torch.no_grad():  # into a buffer: nothing leaves the device (the fast path replays it)
            self.real_energy.copy_(real.out.mean())
        return Terms(-self.k * fake.out.mean())

    def generator_step(self, real: Tensor, opt: Any) -> dict[str, Tensor]:
        """G's step, then k_t's update; under DDP both energies are averaged over the ranks first."""
        stats = super().generator_step(real, opt)
        real_e, fake_e, m = self.real_energy.clone(), stats["g/adv"], self.mcfg
        if self._trainer is not None and self.trainer.world_size > 1:
            real_e, fake_e = (self.trainer.strategy.reduce(e, reduce_op="mean") for e in (real_e, fake_e))
        balance = float(m.gamma) * real_e - fake_e
        with torch.no_grad():
            self.k.copy_((self.k + float(m.lambda_k) * balance).clamp(0.0, 1.0))
        return {
            **stats,
            "began/real_energy": real_e,
            "began/m_global": real_e + balance.abs(),
            "began/k": self.k.detach().clone(),
        }
