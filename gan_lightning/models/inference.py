"""Inference models: an encoder E: x -> z learnt beside G, offered as ``encode(x)``.

- BiGAN (Donahue et al. 2017) and ALI (Dumoulin et al. 2017) run on the GAN family's loop
  through its hooks: D judges joint pairs, real (x, E(x)) against generated (G(z), z), each pair
  one row [x flattened, z] (``nets.encoder.joint``), so losses, penalties (which interpolate and
  differentiate whole pairs), n_critic, clipping, spectral norm, EMA and precision are the loop's
  own. G's optimizer holds G and E; the G step trains both on D's loss with the labels flipped.
  ALI's encoder is stochastic: z = mu(x) + sigma(x) * eps (the reparameterisation trick).
- The AAE (Makhzani et al. 2016) is a different step structure on the same base: per step a
  reconstruction phase (E and the decoder G on ||G(E(x)) - x||^2), then a regularisation phase
  (D on codes tells prior samples from E(x), then E fools it), with a Gaussian or a mixture prior;
  ``model.supervised`` gives the decoder the one-hot label too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data import DATAMODULES
from gan_lightning.data.base import Batch, seed_for
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import GANModule, OptimizerGroup
from gan_lightning.models.gan import ADAM_DCGAN, DCGAN_NETS, GAN, Fake, GANConfig, Judged, resolve_d_norm
from gan_lightning.nets import build_generator, validate_nets
from gan_lightning.nets.encoder import (
    build_code_critic,
    build_encoder,
    build_joint_critic,
    check_encoder_trunk,
    joint,
)
from gan_lightning.nets.layers import add_spectral_norm
from gan_lightning.penalties import penalty_from_config
from gan_lightning.registry import MODELS, ConfigError
from gan_lightning.schema import EMAConfig, ModelConfig, PenaltyConfig

ENCODER_NORMS = ("batch", "layer", "none")


def _check_encoder_norm(cfg: DictConfig) -> None:
    if cfg.model.e_norm not in ENCODER_NORMS:
        raise ConfigError(f"bad value for 'model.e_norm': one of {', '.join(ENCODER_NORMS)}, got '{cfg.model.e_norm}'")


class EncoderMixin:
    """``encode`` in batches and eval mode, for the models with an encoder E."""

    has_encoder = True
    E: nn.Module
    device: torch.device

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode_from(self, x: Tensor, y: Tensor | None = None, batch_size: int = 500) -> Tensor:
        """``encode`` of model-space images in eval mode (BatchNorm's running statistics), in
        batches, on this module's device."""
        was_training = self.E.training
        self.E.eval()
        try:
            out = [
                self.encode(x[i : i + batch_size].to(self.device), None if y is None else y[i : i + batch_size])
                for i in range(0, len(x), batch_size)
            ]
        finally:
            self.E.train(was_training)
        return torch.cat(out) if out else torch.empty(0, int(getattr(self, "z_dim", 0)))


# ----------------------------------------------------------------------------- BiGAN / ALI
@dataclass
class BiGANConfig(GANConfig):
    name: str = "bigan"
    e_norm: str = "batch"  # the encoder's normalisation: batch | layer | none


@MODELS.register("bigan")
class BiGAN(EncoderMixin, GAN):
    """BiGAN (Donahue et al. 2017): E: x -> z and G: z -> x against D(x, z), which tells real
    pairs (x, E(x)) (label 1) from generated pairs (G(z), z) (label 0). G and E minimise D's loss
    with the labels flipped (the paper's practical objective, section 3.4); both are stepped by
    G's optimizer. Deterministic encoder. Adam lr 2e-4, beta1 0.5 as in the paper; the DCGAN
    trunks are our choice, and z ~ N(0, I) where the paper draws U[-1, 1]."""

    Config = BiGANConfig
    plain_critic = False  # D reads (x, z) pairs
    defaults: ClassVar[dict[str, Any]] = {"nets": DCGAN_NETS, "optim": ADAM_DCGAN}
    # E's outputs per z dimension: 1 (z itself); ALI's stochastic encoder gives 2 (mu, log sigma)
    encoder_outputs: ClassVar[int] = 1

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        _check_encoder_norm(cfg)
        check_encoder_trunk(cfg.nets)
        if m.loss == "minimax":
            raise ConfigError(
                f"bad value for 'model.loss': {m.name} trains G and E on D's loss with the labels flipped, which for "
                "the minimax loss is the non-saturating game; use model.loss=nonsaturating"
            )
        if not LOSSES.get(m.loss, "model.loss").flips:
            raise ConfigError(
                f"bad value for 'model.loss': {m.name} trains G and E on D's loss with the labels flipped, which for "
                f"'{m.loss}' is no sound objective (hinge: no gradient once the margins hold); use nonsaturating, "
                "least_squares or wasserstein"
            )
        if m.get("augment", "none") != "none":
            raise ConfigError(
                f"bad value for 'model.augment': {m.name}'s D judges (x, z) pairs, which image augmentation does "
                "not cover; use model.augment=none"
            )

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        nets, shape = self.cfg.nets, tuple(self.info.shape)
        g = build_generator(nets, shape, self.z_dim)
        self.E = build_encoder(nets, shape, self.encoder_outputs * self.z_dim, str(self.mcfg.e_norm))
        return g, build_joint_critic(nets, shape, self.z_dim, resolve_d_norm(self.cfg))

    def g_parameters(self) -> list[nn.Parameter]:
        return [*self.G.parameters(), *self.E.parameters()]  # G and E are trained together

    def infer(self, x: Tensor) -> Tensor:
        """The z that D sees beside real x: E(x)."""
        return self.E(x)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) for model-space images (the current train/eval mode; ``encode_from`` for eval)."""
        return self.E(x)

    # the loop's hooks: D judges pairs
    def make_fake(self, n: int) -> Fake:
        assert self.noise is not None  # set up in on_fit_start
        z = self.noise.normal(n, self.z_dim)
        return Fake(joint(self.G(z), z), None, z)

    def make_real(self, x: Tensor) -> Tensor:
        return joint(x, self.infer(x))

    def g_adversarial(self, fake: Judged, real: Tensor) -> Tensor:
        """D's loss with the labels flipped: generated pairs as real, real pairs (x, E(x)) as
        generated; the gradient reaches G through the first and E through the second."""
        real_pairs = self.judge(self.make_real(real))
        return self.loss.d_loss(fake.out, real_pairs.out)


@MODELS.register("ali")
class ALI(BiGAN):
    """ALI (Dumoulin et al. 2017): BiGAN's game with a stochastic encoder, q(z | x) =
    N(mu(x), sigma(x)^2) sampled by the reparameterisation trick z = mu + sigma * eps, eps ~ N(0, I)
    (E outputs (mu, log sigma)); ``encode`` gives the mean. Adam lr 1e-4, beta1 0.5 as in the
    paper's tables; beta2 0.999 is ours."""

    defaults: ClassVar[dict[str, Any]] = {
        "nets": DCGAN_NETS,
        "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.999]},
    }
    encoder_outputs = 2

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma) of q(z | x)."""
        h = self.E(x)
        return h[:, : self.z_dim], h[:, self.z_dim :]

    def infer(self, x: Tensor) -> Tensor:
        assert self.noise is not None  # set up in on_fit_start
        mu, log_sigma = self.posterior(x)
        return mu + log_sigma.exp() * self.noise.normal(len(x), self.z_dim)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x)[0]


# ----------------------------------------------------------------------------- AAE
PRIORS = ("gaussian", "mixture")


def validate_autoencoder_gan(cfg: DictConfig, feeds_noise_inputs: bool) -> None:
    """The checks shared by the models with their own step on an encoder and a plain critic (aae,
    vaegan): the nets, the encoder's trunk and norm and a non-energy loss (their penalty:
    ``GANModule.validate_penalty``)."""
    m = cfg.model
    validate_nets(cfg.nets, str(m.name), feeds_noise_inputs)
    check_encoder_trunk(cfg.nets)
    _check_encoder_norm(cfg)
    if LOSSES.get(m.loss, "model.loss").energy:
        raise ConfigError(
            f"bad value for 'model.loss': '{m.loss}' is for autoencoder critics; {m.name}'s D is a plain critic"
        )


@dataclass
class AAEConfig(ModelConfig):
    name: str = "aae"
    z_dim: int = 16
    loss: str = "nonsaturating"  # the regularisation phase's adversarial loss
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)  # on D's inputs, the codes
    sn_d: bool = False
    prior: str = "gaussian"  # gaussian: N(0, I) | mixture: `components` Gaussians on a circle
    components: int = 10  # mixture: equal-weight components, means on a circle in the first two dims
    radius: float = 4.0  # mixture: the circle's radius
    component_std: float = 0.5  # mixture: each component's std (isotropic)
    supervised: bool = False  # the decoder also receives the one-hot label: G(z, y) (the paper's section 5)
    e_norm: str = "batch"  # the encoder's normalisation: batch | layer | none
    ema: EMAConfig = field(default_factory=EMAConfig)  # of the decoder


def mixture_means(components: int, z_dim: int, radius: float) -> Tensor:
    """Means of the mixture prior: radius (cos 2 pi k / K, sin 2 pi k / K, 0, ..., 0), k < K."""
    angles = torch.arange(components, dtype=torch.float64) * (2 * math.pi / components)
    means = torch.zeros(components, z_dim, dtype=torch.float64)
    means[:, 0], means[:, 1] = radius * angles.cos(), radius * angles.sin()
    return means.float()


class OneHotDecoder(nn.Module):
    """G(z, y) = net([z, one_hot(y)]): the supervised AAE's decoder."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, F.one_hot(y.long(), self.num_classes).to(z.dtype)], dim=1))


@MODELS.register("aae")
class AAE(EncoderMixin, GANModule):
    """Adversarial autoencoder (Makhzani et al. 2016): E and the decoder G learn to reconstruct,
    and D on codes matches E's code distribution to the prior. Each step: the reconstruction phase
    (E and G on the mean squared error), then the regularisation phase (D: prior samples real,
    codes E(x) fake; then E on G's adversarial loss), each phase with its own optimizer, as in the
    paper (which trains with SGD). Adam lr 2e-4, beta1 0.5 (optim.lr_g: the reconstruction
    phase and E's step, optim.lr_d: D), the DCGAN trunks, the MLP D on codes and the mixture prior's
    radius 4 and std 0.5 are our choice."""

    Config = AAEConfig
    defaults: ClassVar[dict[str, Any]] = {"nets": DCGAN_NETS, "optim": ADAM_DCGAN}
    prior_means: Tensor  # buffer

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        m, nets, shape = self.mcfg, self.cfg.nets, tuple(self.info.shape)
        self.loss = LOSSES.get(m.loss, "model.loss")
        self.penalty = penalty_from_config(self.cfg)
        labels = self.num_classes if m.supervised else 0
        decoder = build_generator(nets, shape, self.z_dim + labels)
        self.G: nn.Module = OneHotDecoder(decoder, labels) if m.supervised else decoder
        self.E = build_encoder(nets, shape, self.z_dim, str(m.e_norm))
        self.D = build_code_critic(nets, self.z_dim, "none")
        if m.sn_d:
            add_spectral_norm(self.D)
        self.G_ema = self.make_ema(self.G, m.ema)
        means = mixture_means(int(m.components), self.z_dim, float(m.radius)) if m.prior == "mixture" else None
        self.register_buffer("prior_means", means if means is not None else torch.zeros(0), persistent=False)
        if m.prior == "mixture":  # the grid's fixed z from the prior, seeded as the base's
            self.fixed_z = self.draw_z(
                len(self.fixed_z), torch.Generator().manual_seed(seed_for(int(self.cfg.seed), 0xF1CED))
            )

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        validate_autoencoder_gan(cfg, cls.feeds_noise_inputs)
        checks = [(m.prior in PRIORS, "model.prior", f"one of {', '.join(PRIORS)}, got '{m.prior}'")]
        if m.prior == "mixture":
            checks += [
                (m.z_dim >= 2, "model.z_dim", f"the mixture prior lies on a circle: z_dim >= 2, got {m.z_dim}"),
                (m.components >= 1, "model.components", f"must be >= 1, got {m.components}"),
                (m.radius >= 0, "model.radius", f"must be >= 0, got {m.radius}"),
                (m.component_std > 0, "model.component_std", f"must be > 0, got {m.component_std}"),
            ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")
        if m.supervised and not DATAMODULES.get(cfg.data.name, "data.name").has_labels(cfg):
            raise ConfigError(
                f"bad value for 'model.supervised': the decoder receives the label, so it needs labelled data "
                f"(e.g. fashion_mnist), not '{cfg.data.name}'; use model.supervised=false"
            )

    # ------------------------------------------------------------------ prior, codes, sampling
    @property
    def num_classes(self) -> int:
        return int(self.info.num_classes)

    @property
    def class_conditional(self) -> bool:
        """The supervised AAE samples G(z, y) with the class asked for (a config option, hence a property)."""
        return bool(self.mcfg.supervised)

    def draw_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior, on the CPU: N(0, I), or a component k ~ U{0..K-1} and its Gaussian."""
        if self.mcfg.prior != "mixture":
            return super().draw_z(n, generator)
        k = torch.randint(0, int(self.mcfg.components), (n,), generator=generator)
        eps = torch.randn(n, self.z_dim, generator=generator)
        return self.prior_means.cpu()[k] + float(self.mcfg.component_std) * eps

    def prior_sample(self, n: int) -> Tensor:
        """The regularisation phase's n prior samples, from the per-rank training noise."""
        assert self.noise is not None  # set up in on_fit_start
        if self.mcfg.prior != "mixture":
            return self.noise.normal(n, self.z_dim)
        k = self.noise.randint(int(self.mcfg.components), n)
        return self.prior_means[k] + float(self.mcfg.component_std) * self.noise.normal(n, self.z_dim)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) (the supervised AAE's encoder does not see y: its code is the style)."""
        return self.E(x)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        return self.G(z, y) if self.mcfg.supervised else self.G(z)

    def labels_for(self, n: int) -> Tensor | None:
        return torch.arange(n) % self.num_classes if self.mcfg.supervised else None

    @property
    def grid_nrow(self) -> int | None:
        return max(1, min(len(self.fixed_z) // self.num_classes, 10)) if self.mcfg.supervised else None

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """Supervised: one row per class, column j the same z in every row."""
        if not self.mcfg.supervised:
            return super().sample_fixed()
        k = int(self.grid_nrow or 1)
        z = self.fixed_z[:k].repeat(self.num_classes, 1)
        return self.generate_from(z, None, torch.arange(self.num_classes).repeat_interleave(k))

    # ------------------------------------------------------------------ the step
    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim  # the autoencoder (E and G), D, then E alone as the regularised generator
        return [
            OptimizerGroup([*self.E.parameters(), *self.G.parameters()], o.lr_g),
            OptimizerGroup(self.D.parameters(), o.lr_d),
            OptimizerGroup(self.E.parameters(), o.lr_g),
        ]

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """The reconstruction phase, then the regularisation phase (D step, then E's step)."""
        opt_ae, opt_d, opt_e = self.optimizers()  # type: ignore[attr-defined]  # three optimizers: a list
        x, y = batch.x[0], batch.y[0]
        stats = self.reconstruction_step(x, y, opt_ae)
        stats.update(self.critic_step(x, opt_d))
        stats.update(self.encoder_step(x, opt_e))
        self.update_ema(self.G_ema, self.G, self.mcfg.ema)
        self.finish_step(stats)
        return stats

    def reconstruction_step(self, x: Tensor, y: Tensor, opt: Any) -> dict[str, Tensor]:
        """E and the decoder on the mean squared error of G(E(x)) (per element, model space)."""
        loss = (self.decode(self.E(x), y) - x).pow(2).mean()
        self.backward_step(opt, loss)
        return {"loss/recon": loss.detach()}

    def critic_step(self, x: Tensor, opt: Any) -> dict[str, Tensor]:
        """D: prior samples are real (label 1), the codes E(x) generated (label 0); the penalty on codes."""
        with torch.no_grad():
            codes = self.E(x)
        prior = self.prior_sample(len(x))
        real_out, fake_out = self.D(prior), self.D(codes)
        adv = self.loss.d_loss(real_out, fake_out)
        loss = adv
        stats = {"d/adv": adv.detach(), "d/real": real_out.detach().mean(), "d/fake": fake_out.detach().mean()}
        if self.penalty is not None:
            loss = self.add_penalty(loss, stats, self.D, prior, codes)
        self.backward_step(opt, loss)
        return {"loss/d": loss.detach(), **stats}

    def encoder_step(self, x: Tensor, opt: Any) -> dict[str, Tensor]:
        """E, the generator of the regularisation phase: G's adversarial loss on D(E(x)), D frozen."""
        with self.frozen(self.D):
            loss = self.loss.g_loss(self.D(self.E(x)))
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach()}
