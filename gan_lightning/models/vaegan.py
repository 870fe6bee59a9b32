"""VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

A VAE whose decoder is also a GAN's generator, and whose reconstruction error is measured in the
features of the GAN's discriminator. Nets: the encoder Enc(x) -> (mu, log sigma^2) (``E``), the
decoder Dec(z) (``G``), the discriminator Dis(x) (``D``) whose l-th layer is its feature trunk
(``Critic.features``, before the head). Losses (the paper's section 2, Algorithm 1):

- L_prior = KL(q(z|x) || N(0, I)), q(z|x) = N(mu, sigma^2), sampled as z = mu + sigma * eps;
- L_llike = -log N(Dis_l(x) | Dis_l(Dec(z)), I) = 1/2 ||Dis_l(x) - Dis_l(Dec(z))||^2 (+ const);
- L_GAN = log Dis(x) + log(1 - Dis(Dec(z))) + log(1 - Dis(Dec(z_p))), z_p ~ N(0, I).

Updates, in the paper's order: Enc by L_prior + L_llike, Dec by gamma L_llike plus its generator
loss on Dis(Dec(z)) and Dis(Dec(z_p)), Dis by -L_GAN (it maximises L_GAN; Algorithm 1 of the paper
writes the signs the other way round). Each gradient is taken at the parameters before this step's
updates, as in Algorithm 1 (one forward pass, then three updates): the Dec step decodes the z drawn
before Enc's update and the Dis step judges the Dec outputs from before Dec's update.

``model.adversarial=false`` trains the same VAE with a Gaussian likelihood in pixel space and no
Dis (the plain VAE baseline the paper compares against).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import Batch
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import GANModule, OptimizerGroup
from gan_lightning.models.gan import DCGAN_NETS, resolve_d_norm
from gan_lightning.models.inference import EncoderMixin, validate_autoencoder_gan
from gan_lightning.nets import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
    takes_labels,
)
from gan_lightning.nets.encoder import build_encoder
from gan_lightning.nets.layers import Critic, add_spectral_norm
from gan_lightning.penalties import penalty_from_config
from gan_lightning.registry import MODELS, ConfigError
from gan_lightning.schema import EMAConfig, ModelConfig, PenaltyConfig


@dataclass
class VAEGANConfig(ModelConfig):
    name: str = "vaegan"
    z_dim: int = 128  # the paper's CelebA code size
    # false: the plain VAE (pixel-space likelihood, no Dis), the baseline of the paper's comparison
    adversarial: bool = True
    # Dec's weight of content (L_llike) against style (the GAN term): the paper's gamma. Ours are per-sample
    # sums (over features / code dims) averaged over the batch, where L_llike is O(10^2-10^3) and L_GAN O(1)
    gamma: float = 1.0e-2
    pixel_std: float = 0.2  # adversarial=false: p(x|z) = N(x | Dec(z), pixel_std^2 I) in model space [-1, 1]
    loss: str = "nonsaturating"  # the GAN term's registered loss (nonsaturating: Dec minimises -log Dis(Dec(z)))
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)  # on Dis
    sn_d: bool = False
    e_norm: str = "batch"  # the encoder's normalisation: batch | layer | none
    ema: EMAConfig = field(default_factory=EMAConfig)  # of the decoder


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2), summed
    over the code dims, averaged over the batch (Kingma & Welling 2014, appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()


def gaussian_nll(target: Tensor, mean: Tensor, std: float = 1.0) -> Tensor:
    """-log N(target | mean, std^2 I) less its constant: 1/2 ||(target - mean) / std||^2 per sample,
    averaged over the batch."""
    return 0.5 * ((target - mean) / std).pow(2).flatten(1).sum(1).mean()


@MODELS.register("vaegan")
class VAEGAN(EncoderMixin, GANModule):
    """VAE-GAN (Larsen et al. 2016): Enc, Dec and Dis with three optimizers (Enc and Dec at
    ``optim.lr_g``, Dis at ``optim.lr_d``) stepped Enc, Dec, Dis each G step. Dec's adversarial
    term is the registered loss's G loss (nonsaturating by default: -log Dis(Dec(z)) for the
    paper's log(1 - Dis(Dec(z))); ``model.loss=minimax`` gives the paper's literal term). Dis's
    fake batch is the union of the reconstructions and the prior samples, so each of the paper's
    two fake terms enters at weight 1/2 beside the real term (the paper sums them: 2:1) and any
    registered loss applies unchanged. RMSProp lr 3e-4 is the paper's; the DCGAN trunks, Dis_l =
    Dis's features before its head, and gamma are ours."""

    Config = VAEGANConfig
    defaults: ClassVar[dict[str, Any]] = {"nets": DCGAN_NETS, "optim": {"name": "rmsprop", "lr_g": 3e-4, "lr_d": 3e-4}}

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        m, nets, shape = self.mcfg, self.cfg.nets, tuple(self.info.shape)
        self.loss = LOSSES.get(m.loss, "model.loss")
        self.penalty = penalty_from_config(self.cfg)
        self.E = build_encoder(nets, shape, 2 * self.z_dim, str(m.e_norm))  # (mu, log sigma^2)
        self.G = build_generator(nets, shape, self.z_dim)
        self.D: Critic | None = None
        if m.adversarial:  # built after E and G: their initial weights do not depend on the switch
            self.D = build_discriminator(nets, shape, resolve_d_norm(self.cfg))
            if m.sn_d:
                add_spectral_norm(self.D)
        self.G_ema = self.make_ema(self.G, m.ema)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        validate_autoencoder_gan(cfg, cls.feeds_noise_inputs)
        for key, registry in (("g", GENERATORS), ("d", DISCRIMINATORS)):
            if takes_labels(registry.get(cfg.nets[key], f"nets.{key}")):
                raise ConfigError(
                    f"bad value for 'nets.{key}': '{cfg.nets[key]}' is a class-conditional net, which vaegan does "
                    "not feed labels; use an unconditional net (dcgan, mlp)"
                )
        checks = [
            (m.gamma >= 0, "model.gamma", f"Dec's weight of L_llike must be >= 0, got {m.gamma}"),
            (m.pixel_std > 0, "model.pixel_std", f"the pixel likelihood's std must be > 0, got {m.pixel_std}"),
        ]
        for key, on in (("model.penalty.name", m.penalty.name != "none"), ("model.sn_d", m.sn_d)):
            checks.append(
                (
                    m.adversarial or not on,
                    key,
                    "model.adversarial=false trains the plain VAE, which has no Dis to regularise; "
                    f"drop {key} or set model.adversarial=true",
                )
            )
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")
        if m.adversarial:
            resolve_d_norm(cfg)

    # ------------------------------------------------------------------ encoder and sampling
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2) of q(z | x)."""
        h = self.E(x)
        return h[:, : self.z_dim], h[:, self.z_dim :]

    def reparameterise(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) from the per-rank training noise."""
        assert self.noise is not None  # set up in on_fit_start
        return mu + (0.5 * logvar).exp() * self.noise.normal(len(mu), self.z_dim)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The posterior mean mu(x) (the current train/eval mode; ``encode_from`` for eval)."""
        return self.posterior(x)[0]

    # ------------------------------------------------------------------ the likelihood
    def likelihood_space(self, x: Tensor) -> Tensor:
        """Where reconstructions are compared: Dis_l(x), Dis's features (adversarial), else pixels."""
        return x if self.D is None else self.D.features(x)

    def llike(self, target: Tensor, x_rec: Tensor) -> Tensor:
        """L_llike: -log p(target | Dec(z)), a unit-variance Gaussian on Dis's features, or one of
        std ``model.pixel_std`` on pixels; ``target`` is ``likelihood_space`` of the real batch."""
        if self.D is None:
            return gaussian_nll(target, x_rec, float(self.mcfg.pixel_std))
        return gaussian_nll(target, self.likelihood_space(x_rec))

    # ------------------------------------------------------------------ the step
    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim  # Enc, Dec (= G), then Dis when adversarial
        groups = [OptimizerGroup(self.E.parameters(), o.lr_g), OptimizerGroup(self.G.parameters(), o.lr_g)]
        return [*groups, OptimizerGroup(self.D.parameters(), o.lr_d)] if self.D is not None else groups

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """Algorithm 1: Enc's update, Dec's, then Dis's (adversarial only)."""
        opts = self.optimizers()
        x = batch.x[0]
        with torch.no_grad():
            target = self.likelihood_space(x)
        stats, z = self.encoder_step(x, target, opts[0])  # type: ignore[index]  # several optimizers: a list
        g_stats, fakes = self.decoder_step(target, z, opts[1])  # type: ignore[index]
        stats.update(g_stats)
        if self.D is not None:
            stats.update(self.critic_step(x, fakes, opts[2]))  # type: ignore[index]
        self.update_ema(self.G_ema, self.G, self.mcfg.ema)
        self.finish_step(stats)
        return stats

    def encoder_step(self, x: Tensor, target: Tensor, opt: Any) -> tuple[dict[str, Tensor], Tensor]:
        """Enc on L_prior + L_llike (Dec and Dis frozen: no L_GAN reaches Enc); returns the stats
        and the drawn z, detached, for Dec's step."""
        mu, logvar = self.posterior(x)
        z = self.reparameterise(mu, logvar)
        prior = kl_to_standard_normal(mu, logvar)
        with self.frozen(*[n for n in (self.G, self.D) if n is not None]):
            llike = self.llike(target, self.G(z))
        loss = prior + llike
        self.backward_step(opt, loss)
        return {"loss/e": loss.detach(), "vae/kl": prior.detach(), "vae/llike": llike.detach()}, z.detach()

    def decoder_step(self, target: Tensor, z: Tensor, opt: Any) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """Dec on gamma L_llike + the GAN term of Dis(Dec(z)) and Dis(Dec(z_p)), Dis frozen (the
        plain VAE: L_llike alone); returns the stats and Dec's outputs, detached, for Dis."""
        x_rec = self.G(z)
        if self.D is None:
            loss = self.llike(target, x_rec)
            self.backward_step(opt, loss)
            return {"loss/g": loss.detach()}, (x_rec.detach(),)
        assert self.noise is not None  # set up in on_fit_start
        x_p = self.G(self.noise.normal(len(z), self.z_dim))
        with self.frozen(self.D):
            features = self.D.features(x_rec)  # Dis_l(Dec(z)), read by both terms
            llike = gaussian_nll(target, features)
            out = torch.cat([self.D.head(features).squeeze(1), self.D(x_p)])
            adv = self.loss.g_loss(out)
            loss = float(self.mcfg.gamma) * llike + adv
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach(), "g/adv": adv.detach(), "g/llike": llike.detach()}, (
            x_rec.detach(),
            x_p.detach(),
        )

    def critic_step(self, x: Tensor, fakes: tuple[Tensor, ...], opt: Any) -> dict[str, Tensor]:
        """Dis on L_GAN: x real, the reconstructions and the prior samples fake (one fake batch);
        the penalty between each real sample and each kind of fake."""
        D = cast(Critic, self.D)
        real_out = D(x)
        fake_out = torch.cat([D(f) for f in fakes])
        adv = self.loss.d_loss(real_out, fake_out)
        loss = adv
        stats = {"d/adv": adv.detach(), "d/real": real_out.detach().mean(), "d/fake": fake_out.detach().mean()}
        if self.penalty is not None:
            real = x.repeat(len(fakes), *([1] * (x.dim() - 1)))
            loss = self.add_penalty(loss, stats, D, real, torch.cat(fakes))
        self.backward_step(opt, loss)
        return {"loss/d": loss.detach(), **stats}
