"""The unconditional GAN family: one training loop, variants as defaults.

Loss, penalty, n_critic, weight clipping, spectral norm, label smoothing, EMA and the nets are
orthogonal config axes; GAN, DCGAN, WGAN, WGAN-GP, LSGAN, SNGAN and DRAGAN are thin subclasses
that set the defaults of their papers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.config import EMAConfig, ModelConfig, PenaltyConfig
from gan_lightning.data.base import Batch
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import GANModule
from gan_lightning.nets import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from gan_lightning.penalties import PENALTIES, clip_weights_
from gan_lightning.registry import ConfigError, Registry

MODELS: Registry[type[GANModule]] = Registry("model")


@dataclass
class GANConfig(ModelConfig):
    name: str = "gan"
    loss: str = "nonsaturating"  # minimax | nonsaturating | wasserstein | hinge | least_squares
    n_critic: int = 1  # D steps per G step
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    clip: float = 0.0  # WGAN weight clipping: D parameters into [-clip, clip] (0: off)
    label_smoothing: float = 0.0  # one-sided: real label 1 - s (Salimans et al. 2016)
    sn_d: bool = False  # spectral norm on every D layer
    sn_g: bool = False
    ema: EMAConfig = field(default_factory=EMAConfig)


def resolve_d_norm(cfg: DictConfig) -> str:
    """nets.d_norm=auto: no normalisation with a per-sample penalty or spectral norm, else batch
    (conv nets) / none (MLP)."""
    norm, m = cfg.nets.d_norm, cfg.model
    per_sample = m.penalty.name in ("gp", "dragan")
    if norm == "auto":
        return "none" if per_sample or m.sn_d or cfg.nets.d == "mlp" else "batch"
    if norm == "batch" and per_sample:
        raise ConfigError(
            f"bad value for 'nets.d_norm': BatchNorm in the critic breaks the per-sample '{m.penalty.name}' "
            "penalty (Gulrajani et al. 2017); use nets.d_norm=layer or none"
        )
    return str(norm)


@MODELS.register("gan")
class GAN(GANModule):
    """Goodfellow et al. 2014, with the non-saturating G loss (``model.loss=minimax`` for the
    saturating one) and MLP nets."""

    Config = GANConfig
    defaults: dict[str, Any] = {"nets": {"g": "mlp", "d": "mlp"}}

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        m = self.mcfg
        self.loss = LOSSES.get(m.loss, "model.loss")
        self.penalty = PENALTIES.get(m.penalty.name, "model.penalty.name") if m.penalty.name != "none" else None
        self.G, self.D = self.build_nets()
        self.G_ema = self.make_ema(self.G, m.ema)
        self._fast: tuple[Any, Any] | None = None

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        m, nets = self.mcfg, self.cfg.nets
        g = build_generator(nets, self.info.shape, self.z_dim, spectral_norm=m.sn_g)
        d = build_discriminator(nets, self.info.shape, resolve_d_norm(self.cfg), spectral_norm=m.sn_d)
        return g, d

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        GENERATORS.get(cfg.nets.g, "nets.g")
        DISCRIMINATORS.get(cfg.nets.d, "nets.d")
        m = cfg.model
        loss = LOSSES.get(m.loss, "model.loss")
        if m.penalty.name != "none":
            PENALTIES.get(m.penalty.name, "model.penalty.name")
        checks = [
            (m.n_critic >= 1, "model.n_critic", f"must be >= 1 D steps per G step, got {m.n_critic}"),
            (m.penalty.weight >= 0, "model.penalty.weight", f"must be >= 0, got {m.penalty.weight}"),
            (m.clip >= 0, "model.clip", f"must be >= 0 (0 turns clipping off), got {m.clip}"),
            (0 <= m.label_smoothing < 0.5, "model.label_smoothing", f"in [0, 0.5), got {m.label_smoothing}"),
            (
                m.label_smoothing == 0 or loss.smoothable,
                "model.label_smoothing",
                f"label smoothing has no meaning for the '{m.loss}' loss (no labels)",
            ),
        ]
        for ok, name, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{name}': {msg}")
        if m.penalty.name != "none" and str(cfg.trainer.get("precision", "32-true")).startswith("16"):
            raise ConfigError(
                "bad value for 'trainer.precision': the gradient penalty's double backward is not loss-scaled "
                "under 16-bit mixed precision; use 32-true (with TF32) or bf16-mixed"
            )
        resolve_d_norm(cfg)
        if cfg.perf.fast:
            fast_ok = cls.draw_labels is GAN.draw_labels and cls.training_step is GAN.training_step
            if not fast_ok:
                raise ConfigError(
                    f"bad value for 'perf.fast': the fast path covers the unconditional GAN family, not '{m.name}'"
                )
            if cfg.optim.name not in ("adam", "rmsprop"):
                raise ConfigError(
                    f"bad value for 'perf.fast': it needs optim.name adam or rmsprop, not '{cfg.optim.name}'"
                )
            devices = cfg.trainer.get("devices", 1)
            if str(devices) not in ("1", "auto") or int(cfg.trainer.get("num_nodes", 1)) > 1:
                raise ConfigError("bad value for 'perf.fast': it runs on one device (no DDP); drop trainer.devices")

    @property
    def real_batches_per_step(self) -> int:
        return int(self.mcfg.n_critic)

    def generator_for_sampling(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        opt_g = self.make_optimizer(self.G.parameters(), o.lr_g)
        opt_d = self.make_optimizer(self.D.parameters(), o.lr_d)
        return [opt_g, opt_d], [self.make_scheduler(opt_g), self.make_scheduler(opt_d)]

    # ------------------------------------------------------------------ conditioning hooks
    # Unconditional here; ConditionalGAN draws labels and passes them to G and D.
    def draw_labels(self, n: int) -> Tensor | None:
        return None

    def fake(self, n: int, y: Tensor | None = None) -> Tensor:
        return self.G(self.noise.normal(n, self.z_dim))

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.D(x)

    # ------------------------------------------------------------------ the loop
    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """n_critic D steps, each on its own real batch, then one G step."""
        opt_g, opt_d = self.optimizers()
        if self.cfg.perf.fast:
            d_step, g_step = self.fast_steps(opt_d, opt_g)
            for real, y_real in zip(batch.x.unbind(0), batch.y.unbind(0)):
                d_stats = d_step(real, y_real)
            g_stats = g_step()
        else:
            for real, y_real in zip(batch.x.unbind(0), batch.y.unbind(0)):
                d_stats = self.critic_step(real, y_real, opt_d)
            g_stats = self.generator_step(real.shape[0], opt_g)
        self.update_ema(self.G_ema, self.G, self.mcfg.ema)
        stats = {**d_stats, **g_stats}
        self.finish_step(stats)
        return stats

    def critic_step(self, real: Tensor, y_real: Tensor, opt: Any) -> dict[str, Tensor]:
        m = self.mcfg
        y_fake = self.draw_labels(real.shape[0])
        with torch.no_grad():
            fake = self.fake(real.shape[0], y_fake)
        real_out, fake_out = self.critic(real, y_real), self.critic(fake, y_fake)
        loss = self.loss.d_loss(real_out, fake_out, real_label=1.0 - m.label_smoothing)
        stats = {"d/adv": loss.detach(), "d/real": real_out.detach().mean(), "d/fake": fake_out.detach().mean()}
        if self.penalty is not None:
            penalty = self.penalty(lambda x: self.critic(x, y_real), real, fake, self.noise.uniform)
            loss = loss + m.penalty.weight * penalty
            stats["d/penalty"] = penalty.detach()
        self.backward_step(opt, loss)
        if m.clip > 0:
            clip_weights_(self.D, m.clip)
        return {"loss/d": loss.detach(), **stats}

    def generator_step(self, n: int, opt: Any) -> dict[str, Tensor]:
        y = self.draw_labels(n)
        with self.frozen(self.D):
            fake_out = self.critic(self.fake(n, y), y)
            loss = self.loss.g_loss(fake_out)
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach()}

    def fast_steps(self, opt_d: Any, opt_g: Any) -> tuple[Any, Any]:
        """perf.fast: the same D and G steps as replayable units (see gan_lightning/fast.py)."""
        if self._fast is None:
            from gan_lightning.fast import ReplayableStep, autocast_for

            assert self.noise is not None
            if self.trainer.world_size > 1:
                raise ConfigError("perf.fast runs on one device; it does not support DDP")
            raw_d, raw_g = opt_d.optimizer, opt_g.optimizer
            autocast = autocast_for(self.trainer.precision, self.device)

            def d_fn(tape: Any, real: Tensor, y_real: Tensor) -> dict[str, Tensor]:
                with self.noise_from(tape):
                    return self.critic_step(real, y_real, raw_d)

            def g_fn(tape: Any) -> dict[str, Tensor]:
                with self.noise_from(tape):
                    return self.generator_step(int(self.cfg.data.batch_size), raw_g)

            self._fast = (
                ReplayableStep(d_fn, self.noise, self.device, autocast),
                ReplayableStep(g_fn, self.noise, self.device, autocast),
            )
        return self._fast


# ---------------------------------------------------------------------- named variants
DCGAN_NETS = {"g": "dcgan", "d": "dcgan"}


@dataclass
class DCGANConfig(GANConfig):
    name: str = "dcgan"


@MODELS.register("dcgan")
class DCGAN(GAN):
    """Radford et al. 2016: conv nets with BatchNorm, Adam lr 2e-4, beta1 0.5, non-saturating loss."""

    Config = DCGANConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}}


@dataclass
class WGANConfig(GANConfig):
    name: str = "wgan"
    loss: str = "wasserstein"
    n_critic: int = 5
    clip: float = 0.01


@MODELS.register("wgan")
class WGAN(GAN):
    """Arjovsky et al. 2017 (Algorithm 1): clipping c = 0.01, RMSprop lr 5e-5, n_critic 5."""

    Config = WGANConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5}}


@dataclass
class WGANGPConfig(GANConfig):
    name: str = "wgan_gp"
    loss: str = "wasserstein"
    n_critic: int = 5
    penalty: PenaltyConfig = field(default_factory=lambda: PenaltyConfig("gp", 10.0))


@MODELS.register("wgan_gp")
class WGANGP(GAN):
    """Gulrajani et al. 2017 (Algorithm 1): lambda 10, n_critic 5, Adam lr 1e-4, betas (0, 0.9),
    no BatchNorm in the critic."""

    Config = WGANGPConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]}}


@dataclass
class LSGANConfig(GANConfig):
    name: str = "lsgan"
    loss: str = "least_squares"


@MODELS.register("lsgan")
class LSGAN(GAN):
    """Mao et al. 2017: least-squares loss with the 0-1 coding (a=0, b=1, c=1), Adam lr 2e-4, beta1 0.5."""

    Config = LSGANConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}}


@dataclass
class SNGANConfig(GANConfig):
    name: str = "sngan"
    loss: str = "hinge"
    sn_d: bool = True


@MODELS.register("sngan")
class SNGAN(GAN):
    """Miyato et al. 2018: spectral norm on every D layer, hinge loss; Adam lr 2e-4, betas (0.5, 0.999),
    n_dis 1 (one of the settings of their Table 1 for the standard CNN)."""

    Config = SNGANConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}}


@dataclass
class DRAGANConfig(GANConfig):
    name: str = "dragan"
    penalty: PenaltyConfig = field(default_factory=lambda: PenaltyConfig("dragan", 10.0))


@MODELS.register("dragan")
class DRAGAN(GAN):
    """Kodali et al. 2017: non-saturating loss + gradient penalty around perturbed data, lambda 10.
    The paper fixes no optimizer; Adam lr 1e-4, betas (0.5, 0.9) is our choice."""

    Config = DRAGANConfig
    defaults = {"nets": DCGAN_NETS, "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.9]}}
