"""Class-conditional GANs on the shared loop: cGAN (concatenation or projection critic), ACGAN
and InfoGAN. Losses, penalties, n_critic and spectral norm combine with them by config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data import DATAMODULES
from gan_lightning.models.gan import GAN, Fake, GANConfig, Judged, Terms, resolve_d_norm
from gan_lightning.models.labels import class_cdf, draw_from, proportional_labels
from gan_lightning.nets import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, takes_labels
from gan_lightning.nets.layers import Critic
from gan_lightning.registry import MODELS, ConfigError


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

    def __init__(self, net: Critic, num_classes: int, mode: str):
        super().__init__()
        self.net, self.mode, self.num_classes = net, mode, num_classes
        if mode == "projection":
            self.embed = nn.Embedding(num_classes, net.feature_dim)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

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
    if not DATAMODULES.get(cfg.data.name, "data.name").has_labels(cfg):
        raise ConfigError(f"model '{model}' needs labelled data (e.g. mnist, fashion_mnist), not '{cfg.data.name}'")


class ConditionalMixin:
    """Shared by the class-conditional models: G(z, y) with y drawn per rank at the data's class mix,
    labels in those proportions for metrics and sampling, one grid row per class."""

    info: Any
    fixed_z: Tensor
    class_conditional = True  # metrics check that samples show the class they were asked for
    plain_critic = False  # D reads the label too
    z_only_generator = False  # G(z, y)

    @property
    def num_classes(self) -> int:
        return int(self.info.num_classes)

    @property
    def class_mix(self) -> list[float]:
        """Each class's share of the training data (uniform where it is not known)."""
        return list(self.info.class_frequencies) or [1.0 / self.num_classes] * self.num_classes

    def labels_for(self, n: int) -> Tensor:
        """Labels in the data's proportions, the classes interleaved (the classes in turn when balanced)."""
        return proportional_labels(n, self.class_mix)

    def label_cdf(self) -> Tensor | None:
        """``class_cdf`` of the mix on this module's device, made once rather than on every step (under
        perf.fast a host-to-device copy could not be captured). The mix only goes from unknown to known
        (``on_fit_start``), so its length keys the copy with the device."""
        key = (self.device, len(self.info.class_frequencies))  # type: ignore[attr-defined]
        cached = getattr(self, "_label_cdf", None)
        if cached is None or cached[0] != key:
            self._label_cdf = (key, class_cdf(self.class_mix, key[0]))
        return self._label_cdf[1]

    def make_fake(self, n: int) -> Fake:
        y = draw_from(self.noise, n, self.num_classes, self.label_cdf())  # type: ignore[attr-defined]
        return Fake(self.G(self.noise.normal(n, self.z_dim), y), y)  # type: ignore[attr-defined]

    def make_critic_fake(self, n: int, y_real: Tensor) -> Fake:
        """The D step's fakes carry the real batch's labels (drawn at the data's mix, as ``make_fake``'s
        are): a gradient penalty's interpolate of real i and fake i is then of one class, the one D is told."""
        return Fake(self.G(self.noise.normal(n, self.z_dim), y_real), y_real)  # type: ignore[attr-defined]

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
    defaults: ClassVar[dict[str, Any]] = {"nets": {"g": "dcgan", "d": "dcgan"}}
    labelled_nets = True  # class-conditional nets (nets.g/d=biggan) take y themselves: no wrapper

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        _needs_labels(cfg, cfg.model.name)
        if cfg.model.conditioning not in ("projection", "concat"):
            raise ConfigError(
                f"bad value for 'model.conditioning': projection or concat, got '{cfg.model.conditioning}'"
            )
        if cfg.model.conditioning == "concat" and takes_labels(DISCRIMINATORS.get(cfg.nets.d, "nets.d")):
            raise ConfigError(
                f"bad value for 'model.conditioning': nets.d={cfg.nets.d} reads the label through its own "
                "projection head; use model.conditioning=projection"
            )

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        """G(z, y) and D(x, y): class-conditional nets as they are, plain ones wrapped (a label
        embedding beside z; a projection or concatenation critic)."""
        m, nets, c, shape = self.mcfg, self.cfg.nets, self.num_classes, self.info.shape
        if takes_labels(GENERATORS.get(nets.g, "nets.g")):
            g: nn.Module = build_generator(nets, shape, self.z_dim, num_classes=c, embed_dim=m.embed_dim)
        else:
            g = LabelledGenerator(build_generator(nets, shape, self.z_dim + m.embed_dim), c, m.embed_dim)
        if takes_labels(DISCRIMINATORS.get(nets.d, "nets.d")):
            return g, build_discriminator(nets, shape, resolve_d_norm(self.cfg), num_classes=c)
        if m.conditioning == "concat":
            shape = (shape[0] + c, *shape[1:]) if len(shape) == 3 else (shape[0] + c,)
        d = build_discriminator(nets, shape, resolve_d_norm(self.cfg))
        return g, LabelledCritic(d, c, m.conditioning)

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        return self.D(x, y), None


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
    D: Critic  # with the auxiliary classifier ``aux`` that build_nets adds
    defaults: ClassVar[dict[str, Any]] = {"nets": {"g": "dcgan", "d": "dcgan"}}

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        _needs_labels(cfg, "acgan")

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        m, nets, c = self.mcfg, self.cfg.nets, self.num_classes
        g = LabelledGenerator(build_generator(nets, self.info.shape, self.z_dim + m.embed_dim), c, m.embed_dim)
        d = build_discriminator(nets, self.info.shape, resolve_d_norm(self.cfg))
        d.aux = nn.Linear(d.feature_dim, c)
        return g, d

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        """(adversarial logit, class logits) from one pass through D's trunk; D does not see y."""
        phi = self.D.features(x)
        return self.D.head(phi).squeeze(1), cast(nn.Module, self.D.aux)(phi)

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        m = self.mcfg
        assert real.y is not None and fake.y is not None  # labelled data; make_fake draws labels
        aux = F.cross_entropy(real.extra, real.y) + m.aux_fake_weight * F.cross_entropy(fake.extra, fake.y)
        accuracy = (real.extra.detach().argmax(1) == real.y).float().mean()
        return Terms(m.aux_weight * aux, {"d/aux": aux.detach(), "d/real_accuracy": accuracy})

    def g_terms(self, fake: Judged) -> Terms:
        assert fake.y is not None  # make_fake draws labels
        aux = F.cross_entropy(fake.extra, fake.y)
        return Terms(self.mcfg.aux_weight * aux, {"g/aux": aux.detach()})


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
    maximised by G and by D with Q: Q shares D's layers ("Q and D share all convolutional layers"), and as in
    the authors' code Q is part of D and lambda L_I enters both D's loss (on the D step's fakes) and G's.
    Grids show one row per value of the categorical code."""

    Config = InfoGANConfig
    D: Critic
    plain_critic = False  # Q reads D's features of each sample
    z_only_generator = False  # G(z, c)
    defaults: ClassVar[dict[str, Any]] = {"nets": {"g": "dcgan", "d": "dcgan"}}

    @property
    def code_dim(self) -> int:
        return int(self.mcfg.categories + self.mcfg.continuous)

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        nets = self.cfg.nets
        g = build_generator(nets, self.info.shape, self.z_dim + self.code_dim)
        d = build_discriminator(nets, self.info.shape, resolve_d_norm(self.cfg))
        # part of D: its optimizer, spectral norm, clipping and freezing in G's step cover Q
        d.Q = nn.Sequential(nn.Linear(d.feature_dim, 128), nn.LeakyReLU(0.2), nn.Linear(128, self.code_dim))
        return g, d

    def make_fake(self, n: int) -> Fake:
        m = self.mcfg
        assert self.noise is not None  # set up in on_fit_start
        cat = self.noise.randint(m.categories, n)
        cont = self.noise.uniform(n, m.continuous) * 2 - 1
        code = torch.cat([F.one_hot(cat, m.categories).float(), cont], dim=1)
        return Fake(self.G(torch.cat([self.noise.normal(n, self.z_dim), code], dim=1)), None, (cat, cont))

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        """(adversarial logit, D's features, which Q reads)."""
        phi = self.D.features(x)
        return self.D.head(phi).squeeze(1), phi

    def information(self, fake: Judged, step: str) -> Terms:
        """lambda L_I, the negative variational lower bound of I(c; G(z, c)) on ``fake``: cross-entropy of the
        categorical code and the unit-variance Gaussian log-likelihood of the continuous ones; stats as ``step``/."""
        m = self.mcfg
        cat, cont = fake.codes
        q = cast(nn.Module, self.D.Q)(fake.extra)
        info_cat = F.cross_entropy(q[:, : m.categories], cat)
        info_cont = 0.5 * (q[:, m.categories :] - cont).pow(2).sum(1).mean()
        q_accuracy = (q[:, : m.categories].detach().argmax(1) == cat).float().mean()
        stats = {f"{step}/info_cat": info_cat.detach(), f"{step}/info_cont": info_cont.detach()}
        stats[f"{step}/q_accuracy"] = q_accuracy
        return Terms(m.info_weight * info_cat + m.continuous_weight * info_cont, stats)

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        return self.information(fake, "d")  # trains D's shared layers and Q

    def g_terms(self, fake: Judged) -> Terms:
        return self.information(fake, "g")

    # sampling: z is followed by the codes; grids show one row per categorical value
    def labels_for(self, n: int) -> Tensor:
        return torch.arange(n) % self.mcfg.categories

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        for key, low in (("categories", 1), ("continuous", 0), ("info_weight", 0), ("continuous_weight", 0)):
            if m[key] < low:
                raise ConfigError(f"bad value for 'model.{key}': must be >= {low}, got {m[key]}")

    def draw_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I) followed by the continuous codes ~ U(-1, 1), as training draws them (the categorical
        code comes from ``labels_for``): metrics, ``sample`` and standing statistics see the whole prior."""
        z = super().draw_z(n, generator)
        return torch.cat([z, torch.rand(n, self.mcfg.continuous, generator=generator) * 2 - 1], dim=1)

    def generate(self, z: Tensor, net: nn.Module | None = None, y: Tensor | None = None) -> Tensor:
        """``z`` of ``draw_z`` (z and continuous codes) or z alone (the grids: continuous codes 0); the one-hot
        categorical code y (or 0) goes between them."""
        net = net or self.generator_for_sampling()
        m = self.mcfg
        if z.shape[1] in (self.z_dim, self.z_dim + m.continuous):
            cont = z[:, self.z_dim :] if z.shape[1] > self.z_dim else z.new_zeros(len(z), m.continuous)
            cat = y if y is not None else torch.zeros(len(z), dtype=torch.long, device=z.device)
            z = torch.cat([z[:, : self.z_dim], F.one_hot(cat.to(z.device), m.categories).float(), cont], dim=1)
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
