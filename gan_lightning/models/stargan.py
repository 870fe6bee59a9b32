"""StarGAN (Choi et al. 2018): one generator translates between every pair of K domains.

G(x, c) takes an image and the target domain's label (one-hot, tiled and concatenated as
channels); D has two heads on one trunk, D_src (WGAN-GP critic on patches) and D_cls (domain
logits). With c the source domain and c' a random other domain (a different one per image):

    L_D = -L_adv + lambda_cls * L_cls^r,   L_cls^r = CE(D_cls(x), c)                (eq. 7)
    L_G =  L_adv + lambda_cls * L_cls^f + lambda_rec * L_rec,  (model.cycle_noise: noise on G(x, c') in L_rec)
           L_cls^f = CE(D_cls(G(x, c')), c'),  L_rec = ||x - G(G(x, c'), c)||_1      (eq. 3, 4, 7)

with L_adv the Wasserstein objective plus the gradient penalty on D_src (eq. 8), lambda_cls = 1,
lambda_rec = 10, lambda_gp = 10, n_critic = 5 D steps per G step, Adam 1e-4, betas (0.5, 0.999),
the learning rate decaying linearly to 0 over the second half (sec. 4.2, 5.1 and the appendix).
A new step structure on the shared base: the GAN loop's D and G steps judge z-samples, these
translate images; the penalty goes through ``GANModule.add_penalty`` like the GAN family's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data import DATAMODULES
from gan_lightning.data.domains import DomainBatch, DomainsDataModule, domain_pairs
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import OptimizerGroup
from gan_lightning.models.translation import (
    CycleConfig,
    TranslationModule,
    register_translator,
    size_multiple,
    translator_capability,
)
from gan_lightning.nets.stargan import LabelConditioned, StarDiscriminator, StarGenerator, ToDomain, max_layers
from gan_lightning.nets.translation import size_problem
from gan_lightning.penalties import penalty_from_config
from gan_lightning.registry import MODELS, ConfigError
from gan_lightning.schema import PenaltyConfig

register_translator(
    "stargan",
    StarGenerator,
    lambda nets, c_in, c_out, size: StarGenerator(c_in, c_out, nets.g_width, nets.resnet_blocks, nets.g_norm),
    reads=("g_width", "resnet_blocks", "g_norm"),
)


@dataclass
class StarGANConfig(CycleConfig):  # cycle_noise: on G(x, c') in L_rec
    name: str = "stargan"
    loss: str = "wasserstein"  # D_src's adversarial loss (WGAN-GP in the paper)
    n_critic: int = 5  # D steps per G step, each on its own real batch
    penalty: PenaltyConfig = field(default_factory=lambda: PenaltyConfig(name="gp", weight=10.0))
    cls_weight: float = 1.0  # lambda_cls: domain classification, of real images for D and of fakes for G
    rec_weight: float = 10.0  # lambda_rec: ||x - G(G(x, c'), c)||_1
    identity_weight: float = 0.0  # ||G(x, c) - x||_1, c the source (not in the paper; CycleGAN's identity loss)


@MODELS.register("stargan")
class StarGAN(TranslationModule):
    """StarGAN (Choi et al. 2018): G(x, c) (6 residual blocks, instance norm), a PatchGAN critic with a domain
    classifier head, WGAN-GP, classification and reconstruction losses."""

    Config = StarGANConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {
            "g": "stargan",
            "d": "patchgan",
            "g_norm": "instance",
            "resnet_blocks": 6,
            "patch_layers": 6,
            "init": "default",
        },
        "optim": {
            "name": "adam",
            "lr_g": 1e-4,
            "lr_d": 1e-4,
            "betas": [0.5, 0.999],
            "schedule": "linear_decay",
            "decay_start": 0.5,
        },
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        m, c = self.mcfg, self.info.shape[0]
        self.domains = list(self.info.domains)
        k = len(self.domains)
        self.loss = LOSSES.get(m.loss, "model.loss")
        self.penalty = penalty_from_config(self.cfg)
        self.G = LabelConditioned(self.translator(c + k, c), k)
        nets = self.cfg.nets
        self.D = self.initialised(StarDiscriminator(c, k, self.info.shape[-1], nets.d_width, nets.patch_layers))
        self.average("G")

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        checks = [
            (m.n_critic >= 1, "model.n_critic", f"must be >= 1 D steps per G step, got {m.n_critic}"),
            (m.cls_weight >= 0, "model.cls_weight", f"must be >= 0, got {m.cls_weight}"),
            (m.rec_weight >= 0, "model.rec_weight", f"must be >= 0, got {m.rec_weight}"),
            (m.identity_weight >= 0, "model.identity_weight", f"must be >= 0, got {m.identity_weight}"),
            (
                not (
                    cfg.nets.g_norm == "instance"
                    and translator_capability(cfg.nets.g, "blind_to_constant_planes_with_instance_norm", False)
                ),
                "nets.g_norm",
                f"the {cfg.nets.g} generator's reflection-padded first layer keeps the tiled label a constant plane, "
                "which its instance norm then subtracts: G would never see the target domain; use nets.g=stargan "
                "(zero padding, the paper's G) or nets.g_norm=batch",
            ),
            (
                cfg.nets.d == "patchgan",
                "nets.d",
                f"StarGAN's critic is a PatchGAN with a domain head, got '{cfg.nets.d}'",
            ),
            (
                cfg.nets.d_norm in ("auto", "none"),
                "nets.d_norm",
                f"StarGAN's critic has no normalisation (a per-sample gradient penalty); use auto or none, "
                f"got '{cfg.nets.d_norm}'",
            ),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")

    @classmethod
    def validate_data(cls, cfg: DictConfig) -> None:
        """StarGAN translates between the domains of a multi-domain task."""
        data_cls = DATAMODULES.get(cfg.data.name, "data.name")
        if not issubclass(data_cls, DomainsDataModule):
            raise ConfigError(
                f"bad value for 'data.name': model 'stargan' translates between several domains, and "
                f"'{cfg.data.name}' is not a multi-domain task; use data=fashion_domains"
            )
        size, layers = int(cfg.data.image_size), int(cfg.nets.patch_layers)
        problem = size_problem(str(cfg.nets.g), 0, size, size_multiple(cfg.nets.g))  # 0: its own critic, below
        if problem:
            raise ConfigError(f"bad value for 'data.image_size': {problem}")
        if layers > max_layers(size):
            raise ConfigError(
                f"bad value for 'nets.patch_layers': StarGAN's critic halves {size}x{size} images at most "
                f"{max_layers(size)} times, got {layers}; use nets.patch_layers={max_layers(size)} or less"
            )

    # ------------------------------------------------------------------ translation interface
    @property
    def real_batches_per_step(self) -> int:
        return int(self.mcfg.n_critic)

    @property
    def directions(self) -> tuple[str, ...]:
        """Every ordered pair of domains, ``<source>_to_<target>``."""
        return tuple(name for _, _, name in domain_pairs(self.domains))

    def nets_for(self, direction: str) -> nn.Module:
        """G bound to the target domain of ``direction`` (``<source>_to_<target>``, or a domain's
        name alone): G reads no source label."""
        target = direction.rsplit("_to_", 1)[-1]
        if target not in self.domains:
            raise ValueError(f"unknown direction '{direction}': the domains are {', '.join(self.domains)}")
        return ToDomain(cast(LabelConditioned, self.generator("G")), self.domains.index(target))

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str | None = None, batch_size: int = 250) -> Tensor:
        """Images -> the target domain of ``direction`` (default: the first, domain 0 -> 1)."""
        return super().translate(images, direction or self.directions[0], batch_size)

    def generator_for_sampling(self) -> nn.Module:
        return self.generator("G")

    @torch.no_grad()
    def translation_grid(self, a: Tensor, b: Tensor) -> tuple[Tensor, int]:
        """Rows of (input, its translation to each domain), in model space (``a``: domain 0 images)."""
        rows = [a.cpu()] + [self.translate(a, name).cpu() for name in self.domains]
        return torch.stack(rows, 1).flatten(0, 1), len(rows)

    # ------------------------------------------------------------------ training
    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim
        return [OptimizerGroup(self.G.parameters(), o.lr_g), OptimizerGroup(self.D.parameters(), o.lr_d)]

    def random_targets(self, source: Tensor) -> Tensor:
        """A target domain per image, uniform over the K - 1 domains other than its source."""
        assert self.noise is not None  # set up in on_fit_start
        k = len(self.domains)
        shift = 1 + (self.noise.uniform(len(source)) * (k - 1)).long().clamp_(max=k - 2)
        return (source + shift.to(source.device)) % k

    def training_step(self, batch: DomainBatch, batch_idx: int) -> dict[str, Tensor]:
        """n_critic D steps, each on its own real batch, then one G step on the last one."""
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: Lightning returns a list
        stats: dict[str, Tensor] = {}
        for x, source in zip(batch.x.unbind(0), batch.domain.unbind(0)):
            stats.update(self.critic_step(x, source, self.random_targets(source), opt_d))
        stats.update(self.generator_step(x, source, self.random_targets(source), opt_g))
        self.finish_step(stats)
        return stats

    def critic_step(self, x: Tensor, source: Tensor, target: Tensor, opt: Any) -> dict[str, Tensor]:
        """-L_adv (with the penalty) + lambda_cls * CE(D_cls(x), source): D's parameters only."""
        m = self.mcfg
        with torch.no_grad():
            fake = self.G(x, target)
        real_src, real_cls = self.D(x)
        fake_src, _ = self.D(fake)
        adv = self.loss.d_loss(real_src, fake_src)
        cls = F.cross_entropy(real_cls, source)
        loss = adv + m.cls_weight * cls
        stats = {"d/adv": adv.detach(), "d/cls": cls.detach(), "d/real": real_src.detach().mean()}
        stats["d/fake"] = fake_src.detach().mean()
        stats["d/cls_accuracy"] = (real_cls.argmax(1) == source).float().mean().detach()
        if self.penalty is not None:
            loss = self.add_penalty(loss, stats, lambda v: self.D(v)[0], x, fake)
        self.backward_step(opt, loss)
        stats["loss/d"] = loss.detach()
        return stats

    def generator_step(self, x: Tensor, source: Tensor, target: Tensor, opt: Any) -> dict[str, Tensor]:
        """L_adv + lambda_cls * CE(D_cls(G(x, c')), c') + lambda_rec * |x - G(G(x, c'), c)|
        (+ identity_weight * |G(x, c) - x|): G's only."""
        m = self.mcfg
        with self.frozen(self.D):
            fake = self.G(x, target)
            fake_src, fake_cls = self.D(fake)
            adv = self.loss.g_loss(fake_src)
            cls = F.cross_entropy(fake_cls, target)
            rec = (self.G(self.perturbed(fake), source) - x).abs().mean()
            loss = adv + m.cls_weight * cls + m.rec_weight * rec
            stats = {"g/adv": adv.detach(), "g/cls": cls.detach(), "g/rec": rec.detach()}
            if m.identity_weight > 0:
                identity = (self.G(x, source) - x).abs().mean()
                loss = loss + m.identity_weight * identity
                stats["g/identity"] = identity.detach()
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach(), **stats}
