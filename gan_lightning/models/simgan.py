"""SimGAN (Shrivastava et al. 2017): a refiner R makes synthetic images look real while staying
close to its input, against a discriminator of local patches that also sees a history of refined
images.

Per generator step (``steps`` counts them, pre-training included): an R update on
L_R = local adversarial loss + model.reg_weight * ||R(x) - x||_1, and every model.r_updates-th
step one D update on real images against refined ones, half of them from the history buffer.
Before that, as in the paper, R is trained model.refiner_pretrain steps on the self-regularisation
alone, then D model.d_pretrain steps alone. Losses are means: the local adversarial loss is the
mean per-patch cross-entropy and the self-regularisation the mean absolute difference per pixel
(the paper sums both; reg_weight absorbs the ratio of patch to pixel counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data.base import PairBatch
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import OptimizerGroup
from gan_lightning.models.translation import (
    IMAGE_DISCRIMINATORS,
    TranslationConfig,
    TranslationModule,
    register_translator,
)
from gan_lightning.nets import with_capabilities
from gan_lightning.nets.simgan import LocalDiscriminator, Refiner
from gan_lightning.registry import MODELS, ConfigError

register_translator(
    "refiner",
    Refiner,
    lambda nets, c_in, c_out, size: Refiner(c_in, c_out, nets.resnet_blocks, nets.g_width, nets.g_norm),
    reads=("resnet_blocks", "g_width", "g_norm"),
)


@IMAGE_DISCRIMINATORS.register("local")
@with_capabilities(reads=("d_width",))
def local_discriminator(nets: Any, channels: int, size: int) -> LocalDiscriminator:
    """SimGAN's local D: a logit per patch (no normalisation layer)."""
    return LocalDiscriminator(channels, nets.d_width)


class RefinedHistory:
    """The paper's buffer of refined images (Shrivastava et al. 2017, Sec. 2.3): of a D batch of b
    generated images, b - b/2 come from the current refiner and b/2 from the buffer (once it holds
    b/2); then b/2 buffer slots, chosen at random, take the newest refined images (appended while
    the buffer of ``size`` images is filling)."""

    def __init__(self, size: int):
        self.size = size
        self.images: Tensor | None = None  # (size, C, H, W), allocated at the first batch
        self.count = 0

    def mix(self, refined: Tensor, rand: Callable[..., Tensor]) -> Tensor:
        refined = refined.detach()
        half = len(refined) // 2
        if self.size == 0 or half == 0:
            return refined
        picks, order = rand(half), rand(self.size)  # drawn every call: a fixed RNG budget
        if self.images is None:
            self.images = refined.new_zeros(self.size, *refined.shape[1:])
        out, before = refined, self.count
        if before >= half:
            old = self.images[(picks * before).long().clamp(max=before - 1)]
            out = torch.cat([refined[: len(refined) - half], old])
        new = refined[: min(half, self.size)]
        appended = min(len(new), self.size - before)  # into the free slots first
        self.images[before : before + appended] = new[:appended]
        self.count = before + appended
        if appended < len(new):  # then over distinct random slots of the images stored before
            slots = [i for i in torch.argsort(order).tolist() if i < before][: len(new) - appended]
            self.images[torch.tensor(slots, device=self.images.device)] = new[appended:]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"images": None if self.images is None else self.images.cpu().clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.count = state["images"], int(state["count"])

    def to(self, device: torch.device) -> None:
        if self.images is not None:
            self.images = self.images.to(device)


@dataclass
class SimGANConfig(TranslationConfig):
    name: str = "simgan"
    loss: str = "nonsaturating"  # cross-entropy per patch; R minimises -log D(R(x)) (the paper's l_real)
    reg_weight: float = 0.1  # lambda of the self-regularisation ||R(x) - x||_1 (mean per pixel)
    history_size: int = 1024  # images in the buffer of refined images (0: no history)
    refiner_pretrain: int = 1000  # first steps: R on the self-regularisation alone (the paper: 1,000)
    d_pretrain: int = 200  # next steps: D alone against the pre-trained R (the paper: 200)
    r_updates: int = 2  # R updates per D update in the adversarial phase (the paper: K_g = 2, K_d = 1)


@MODELS.register("simgan")
class SimGAN(TranslationModule):
    """SimGAN (Shrivastava et al. 2017): ResNet refiner (4 blocks of 64 maps), local patch
    discriminator, adversarial + self-regularisation loss, history of refined images, R and D
    pre-training; Adam 2e-4, betas (0.5, 0.999) (the paper uses plain SGD: optim.name=sgd)."""

    Config = SimGANConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {
            "g": "refiner",
            "d": "local",
            "resnet_blocks": 4,
            "g_width": 64,
            "d_width": 64,
            "g_norm": "none",
            "init": "default",
        },
        "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "schedule": "constant"},
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        c_a, c_b = self.info.shape[0], self.info.shape_b[0]
        self.loss = LOSSES.get(self.mcfg.loss, "model.loss")
        self.R = self.translator(c_a, c_b)
        self.D = self.discriminator(c_b)
        self.history = RefinedHistory(int(self.mcfg.history_size))
        self.average("R")

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        for key in ("reg_weight", "history_size", "refiner_pretrain", "d_pretrain"):
            if m[key] < 0:
                raise ConfigError(f"bad value for 'model.{key}': must be >= 0, got {m[key]}; use 0 to turn it off")
        if m.r_updates < 1:
            raise ConfigError(f"bad value for 'model.r_updates': R updates per D update, >= 1, got {m.r_updates}")
        half = int(cfg.data.batch_size) // 2
        if 0 < m.history_size < half:
            raise ConfigError(
                f"bad value for 'model.history_size': {m.history_size} images never fill the b/2 = {half} old "
                f"images a D batch takes, so D would never see them; use 0 (no history) or >= {half}"
            )

    def nets_for(self, direction: str) -> nn.Module:
        return self.generator("R")

    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim
        return [OptimizerGroup(self.R.parameters(), o.lr_g), OptimizerGroup(self.D.parameters(), o.lr_d)]

    def phase(self, step: int) -> str:
        """'refiner' (R pre-training), 'discriminator' (D pre-training) or 'adversarial' at G step ``step``."""
        m = self.mcfg
        if step < m.refiner_pretrain:
            return "refiner"
        return "discriminator" if step < m.refiner_pretrain + m.d_pretrain else "adversarial"

    def d_step_due(self, step: int) -> bool:
        phase = self.phase(step)
        start = int(self.mcfg.refiner_pretrain + self.mcfg.d_pretrain)
        return phase == "discriminator" or (phase == "adversarial" and (step - start + 1) % self.mcfg.r_updates == 0)

    def training_step(self, batch: PairBatch, batch_idx: int) -> dict[str, Tensor]:
        m = self.mcfg
        opt_r, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: Lightning returns a list
        synthetic, real = batch.a[0], batch.b[0]
        phase, stats = self.phase(self.g_step), {}
        refined: Tensor | None = None
        if phase != "discriminator":  # R step: stay close to the input (and, adversarially, fool D)
            with self.frozen(self.D):
                refined = self.R(synthetic)
                reg = (refined - synthetic).abs().mean()
                r_loss = m.reg_weight * reg
                if phase == "adversarial":
                    adv = self.loss.g_loss(self.D(refined))
                    r_loss = r_loss + adv
                    stats["g/adv"] = adv.detach()
                self.backward_step(opt_r, r_loss)
            stats.update({"loss/g": r_loss.detach(), "g/self_reg": reg.detach()})
        if self.d_step_due(self.g_step):  # D step: real patches against refined ones, half from the history
            if refined is None:
                with torch.no_grad():
                    refined = self.R(synthetic)
            assert self.noise is not None  # set up in on_fit_start
            fake = self.history.mix(refined.detach(), self.noise.uniform)
            d_loss = self.loss.d_loss(self.D(real), self.D(fake))
            self.backward_step(opt_d, d_loss)
            stats["loss/d"] = d_loss.detach()
        self.finish_step(stats)
        return stats

    def rank_state(self) -> dict[str, Any]:
        return {"history": self.history.state_dict()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.history.load_state_dict(state["history"])

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.history.to(self.device)
