"""Class-conditional GANs on the shared loop: cGAN (concatenation or projection critic), ACGAN
and InfoGAN. Losses, penalties, n_critic and spectral norm combine with them by config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.models.gan import GAN, MODELS, GANConfig, resolve_d_norm
from gan_lightning.nets import build_discriminator, build_generator
from gan_lightning.nets.layers import add_spectral_norm
from gan_lightning.registry import ConfigError


class LabelledGenerator(nn.Module):
    """G(z, y) = net([z, embed(y)]): the label enters as a learned embedding beside z."""

    def __init__(self, net: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.net, self.embed = net, nn.Embedding(num_classes, embed_dim)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, self.embed(y)], dim=1))


class LabelledCritic(nn.Module):
    """D(x, y) by ``concat`` (one-hot label maps as extra input channels / features) or by
    ``projection``: D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018)."""

    def __init__(self, net: nn.Module, num_classes: int, mode: str, spectral_norm: bool):
        super().__init__()
        self.net, self.mode, self.num_classes = net, mode, num_classes
        if mode == "projection":
            embed = nn.Embedding(num_classes, net.feature_dim)
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = add_spectral_norm(nn.ModuleDict({"e": embed}))["e"] if spectral_norm else embed

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.mode == "concat":
            onehot = F.one_hot(y, self.num_classes).to(x.dtype)
            if x.dim() == 4:
                onehot = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return self.net(torch.cat([x, onehot], dim=1))
        phi = self.net.features(x)
        return self.net.head(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


@dataclass
class CGANConfig(GANConfig):
    name: str = "cgan"
    conditioning: str = "projection"  # how D sees the label: projection | concat
    embed_dim: int = 32  # size of G's label embedding


def _needs_labels(cfg: DictConfig, model: str) -> None:
    from gan_lightning.data import DATAMODULES

    if not DATAMODULES.get(cfg.data.name, "data.name").has_labels(cfg):
        raise ConfigError(f"model '{model}' needs labelled data (e.g. mnist, fashion_mnist), not '{cfg.data.name}'")


class ConditionalMixin:
    """Shared by the conditional models: balanced labels for sampling, one grid row per class."""

    info: Any
    fixed_z: Tensor
    class_conditional = True  # metrics check that samples show the class they were asked for

    @property
    def num_classes(self) -> int:
        return int(self.info.num_classes)

    def labels_for(self, n: int) -> Tensor:
        return torch.arange(n) % self.num_classes

    def draw_labels(self, n: int) -> Tensor:
        return self.noise.randint(self.num_classes, n)  # type: ignore[attr-defined]

    @property
    def grid_nrow(self) -> int:
        return max(1, min(len(self.fixed_z) // self.num_classes, 10))

    def sample_fixed(self) -> Tensor:
        """One row per class; column j uses the same z in every row."""
        k = self.grid_nrow
        z = self.fixed_z[:k].repeat(self.num_classes, 1)
        y = torch.arange(self.num_classes).repeat_interleave(k)
        return self.generate_from(z, None, y)  # type: ignore[attr-defined]


@MODELS.register("cgan")
class CGAN(ConditionalMixin, GAN):
    """Conditional GAN (Mirza & Osindero 2014): G(z, y), D(x, y); ``model.conditioning`` picks
    concatenation or the projection critic."""

    Config = CGANConfig
    defaults: dict[str, Any] = {"nets": {"g": "dcgan", "d": "dcgan"}}

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        _needs_labels(cfg, cfg.model.name)
        if cfg.model.conditioning not in ("projection", "concat"):
            raise ConfigError(
                f"bad value for 'model.conditioning': projection or concat, got '{cfg.model.conditioning}'"
            )

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        m, nets, c = self.mcfg, self.cfg.nets, self.num_classes
        g = LabelledGenerator(build_generator(nets, self.info.shape, self.z_dim + m.embed_dim, m.sn_g), c, m.embed_dim)
        shape = self.info.shape
        if m.conditioning == "concat":
            shape = (shape[0] + c, *shape[1:]) if len(shape) == 3 else (shape[0] + c,)
        d = build_discriminator(nets, shape, resolve_d_norm(self.cfg), spectral_norm=m.sn_d)
        return g, LabelledCritic(d, c, m.conditioning, m.sn_d)

    def fake(self, n: int, y: Tensor | None = None) -> Tensor:
        return self.G(self.noise.normal(n, self.z_dim), y)

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.D(x, y)


@dataclass
class ACGANConfig(GANConfig):
    name: str = "acgan"
    embed_dim: int = 32
    aux_weight: float = 1.0  # weight of the auxiliary classification losses
    aux_fake_weight: float = 1.0  # D's classification loss on generated images (Odena et al.: 1; 0: real only)


@MODELS.register("acgan")
class ACGAN(ConditionalMixin, GAN):
    """ACGAN (Odena et al. 2017): G(z, y); D has an adversarial head and an auxiliary classifier
    on shared features, trained on the class of real and of generated images; G is rewarded for
    images classified as the class it was asked for."""

    Config = ACGANConfig
    defaults: dict[str, Any] = {"nets": {"g": "dcgan", "d": "dcgan"}}

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        _needs_labels(cfg, "acgan")

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        m, nets = self.mcfg, self.cfg.nets
        g = LabelledGenerator(
            build_generator(nets, self.info.shape, self.z_dim + m.embed_dim, m.sn_g), self.num_classes, m.embed_dim
        )
        d = build_discriminator(nets, self.info.shape, resolve_d_norm(self.cfg), spectral_norm=m.sn_d)
        d.aux = nn.Linear(d.feature_dim, self.num_classes)
        return g, d

    def fake(self, n: int, y: Tensor | None = None) -> Tensor:
        return self.G(self.noise.normal(n, self.z_dim), y)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(adversarial logit, class logits) from one pass through D's trunk."""
        phi = self.D.features(x)
        return self.D.head(phi).squeeze(1), self.D.aux(phi)

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.heads(x)[0]

    def critic_step(self, real: Tensor, y_real: Tensor, opt: Any) -> dict[str, Tensor]:
        m = self.mcfg
        y_fake = self.draw_labels(real.shape[0])
        with torch.no_grad():
            fake = self.fake(real.shape[0], y_fake)
        (real_out, real_cls), (fake_out, fake_cls) = self.heads(real), self.heads(fake)
        adv = self.loss.d_loss(real_out, fake_out, real_label=1.0 - m.label_smoothing)
        aux = F.cross_entropy(real_cls, y_real) + m.aux_fake_weight * F.cross_entropy(fake_cls, y_fake)
        loss = adv + m.aux_weight * aux
        if self.penalty is not None:
            loss = loss + m.penalty.weight * self.penalty(self.critic, real, fake, self.noise.uniform)
        self.backward_step(opt, loss)
        accuracy = (real_cls.argmax(1) == y_real).float().mean()
        return {"loss/d": loss.detach(), "d/adv": adv.detach(), "d/aux": aux.detach(), "d/real_accuracy": accuracy}

    def generator_step(self, n: int, opt: Any) -> dict[str, Tensor]:
        y = self.draw_labels(n)
        with self.frozen(self.D):
            fake_out, fake_cls = self.heads(self.fake(n, y))
            aux = F.cross_entropy(fake_cls, y)
            loss = self.loss.g_loss(fake_out) + self.mcfg.aux_weight * aux
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach(), "g/aux": aux.detach()}


@dataclass
class InfoGANConfig(GANConfig):
    name: str = "infogan"
    categories: int = 10  # one categorical code with this many values
    continuous: int = 2  # continuous codes ~ U[-1, 1]
    info_weight: float = 1.0  # lambda of the mutual-information term, categorical part
    continuous_weight: float = 0.1  # and continuous part (Gaussian log-likelihood, unit variance)


@MODELS.register("infogan")
class InfoGAN(GAN):
    """InfoGAN (Chen et al. 2016): G(z, c) with a categorical and continuous codes c; a head Q on
    D's features predicts c from G(z, c), and the variational lower bound of I(c; G(z, c)) is
    maximised by G and Q. Grids show one row per value of the categorical code."""

    Config = InfoGANConfig
    defaults: dict[str, Any] = {"nets": {"g": "dcgan", "d": "dcgan"}}

    @property
    def code_dim(self) -> int:
        return int(self.mcfg.categories + self.mcfg.continuous)

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        m, nets = self.mcfg, self.cfg.nets
        g = build_generator(nets, self.info.shape, self.z_dim + self.code_dim, m.sn_g)
        d = build_discriminator(nets, self.info.shape, resolve_d_norm(self.cfg), spectral_norm=m.sn_d)
        self.Q = nn.Sequential(nn.Linear(d.feature_dim, 128), nn.LeakyReLU(0.2), nn.Linear(128, self.code_dim))
        return g, d

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        opt_g = self.make_optimizer(list(self.G.parameters()) + list(self.Q.parameters()), o.lr_g)
        opt_d = self.make_optimizer(self.D.parameters(), o.lr_d)
        return [opt_g, opt_d], [self.make_scheduler(opt_g), self.make_scheduler(opt_d)]

    def codes(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """(categorical values, continuous codes, the concatenated code vector)."""
        cat = self.noise.randint(self.mcfg.categories, n)
        cont = self.noise.uniform(n, self.mcfg.continuous) * 2 - 1
        return cat, cont, torch.cat([F.one_hot(cat, self.mcfg.categories).float(), cont], dim=1)

    def fake(self, n: int, y: Tensor | None = None) -> Tensor:
        return self.G(torch.cat([self.noise.normal(n, self.z_dim), self.codes(n)[2]], dim=1))

    def generator_step(self, n: int, opt: Any) -> dict[str, Tensor]:
        m = self.mcfg
        cat, cont, c = self.codes(n)
        with self.frozen(self.D):
            fake = self.G(torch.cat([self.noise.normal(n, self.z_dim), c], dim=1))
            phi = self.D.features(fake)
            q = self.Q(phi)
            info_cat = F.cross_entropy(q[:, : m.categories], cat)
            info_cont = 0.5 * (q[:, m.categories :] - cont).pow(2).sum(1).mean()
            loss = self.loss.g_loss(self.D.head(phi).squeeze(1)) + m.info_weight * info_cat
            loss = loss + m.continuous_weight * info_cont
            self.backward_step(opt, loss)
        q_accuracy = (q[:, : m.categories].argmax(1) == cat).float().mean()
        return {
            "loss/g": loss.detach(),
            "g/info_cat": info_cat.detach(),
            "g/info_cont": info_cont.detach(),
            "g/q_accuracy": q_accuracy,
        }

    # sampling: z is followed by the codes; grids show one row per categorical value
    def labels_for(self, n: int) -> Tensor:
        return torch.arange(n) % self.mcfg.categories

    def generate(self, z: Tensor, net: nn.Module | None = None, y: Tensor | None = None) -> Tensor:
        net = net or self.generator_for_sampling()
        if z.shape[1] == self.z_dim:  # append codes: categorical y (or 0), continuous codes 0
            cat = y if y is not None else torch.zeros(len(z), dtype=torch.long, device=z.device)
            cont = torch.zeros(len(z), self.mcfg.continuous, device=z.device)
            z = torch.cat([z, F.one_hot(cat.to(z.device), self.mcfg.categories).float(), cont], dim=1)
        return net(z)

    @property
    def grid_nrow(self) -> int:
        return max(1, min(len(self.fixed_z) // self.mcfg.categories, 10))

    def sample_fixed(self) -> Tensor:
        k = self.grid_nrow
        z = self.fixed_z[:k].repeat(self.mcfg.categories, 1)
        return self.generate_from(z, None, torch.arange(self.mcfg.categories).repeat_interleave(k))

    @torch.no_grad()
    def continuous_sweep(self, code: int = 0, values: int = 7, rows: int = 4) -> Tensor:
        """Images with one continuous code swept over [-1, 1] (columns), other codes fixed (rows)."""
        z = self.fixed_z[:rows].repeat_interleave(values, 0)
        cat = torch.arange(rows).repeat_interleave(values) % self.mcfg.categories
        cont = torch.zeros(len(z), self.mcfg.continuous)
        cont[:, code] = torch.linspace(-1, 1, values).repeat(rows)
        full = torch.cat([z.cpu(), F.one_hot(cat, self.mcfg.categories).float(), cont], dim=1)
        return self.generate_from(full)
