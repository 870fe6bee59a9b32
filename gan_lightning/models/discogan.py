"""DiscoGAN (Kim et al. 2017): CycleGAN's step structure with the paper's own losses and nets.

Two generators G_AB, G_BA and two discriminators D_A, D_B are trained as in CycleGAN (one G step
for both generators, one D step for both discriminators); what differs is written here as
overrides of CycleGAN's hooks and defaults: the standard GAN loss (binary cross-entropy,
non-saturating for G) with D's objective at full weight, the reconstruction distance
d(G_BA(G_AB(x_A)), x_A) = MSE, the total G loss GAN_B + GAN_A + rec_A + rec_B with equal weights
(model.cycle_weight = 1), no identity loss and no image history (model.identity_weight = 0,
model.pool_size = 0), encoder-decoder generators and per-image discriminators (nets/discogan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from gan_lightning.models.translation import IMAGE_DISCRIMINATORS, CycleGAN, CycleGANConfig, register_translator
from gan_lightning.nets import with_capabilities
from gan_lightning.nets.discogan import EncoderDecoder, GlobalDiscriminator
from gan_lightning.registry import MODELS

register_translator(
    "encdec",
    EncoderDecoder,
    lambda nets, c_in, c_out, size: EncoderDecoder(c_in, c_out, size, nets.g_width, nets.g_norm),
    reads=("g_width", "g_norm"),
)


@IMAGE_DISCRIMINATORS.register("global")
@with_capabilities(reads=("d_width", "d_norm"))
def global_discriminator(nets: Any, channels: int, size: int) -> GlobalDiscriminator:
    """DiscoGAN's D: one logit per image (batch norm unless nets.d_norm says otherwise)."""
    return GlobalDiscriminator(channels, size, nets.d_width, "batch" if nets.d_norm == "auto" else nets.d_norm)


@dataclass
class DiscoGANConfig(CycleGANConfig):
    name: str = "discogan"
    loss: str = "nonsaturating"  # the standard GAN loss (Kim et al. 2017)
    cycle_weight: float = 1.0  # rec_A + rec_B weigh as much as GAN_A + GAN_B
    identity_weight: float = 0.0  # DiscoGAN has no identity loss
    pool_size: int = 0  # ... and no history of generated images


@MODELS.register("discogan")
class DiscoGAN(CycleGAN):
    """DiscoGAN (Kim et al. 2017): G_AB, G_BA encoder-decoders (conv + LeakyReLU down, deconv +
    ReLU up, batch norm, no skips), D_A, D_B conv + LeakyReLU + batch norm with a sigmoid output,
    L_G = L_GAN_B + L_GAN_A + L_CONST_A + L_CONST_B with the reconstruction distance MSE (the
    first of the distances the paper names: MSE, cosine distance, hinge loss); Adam 2e-4, betas
    (0.5, 0.999)."""

    Config = DiscoGANConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {"g": "encdec", "d": "global", "g_norm": "batch", "d_norm": "batch", "init": "default"},
        "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "schedule": "constant"},
    }

    def cycle_distance(self, reconstruction: Tensor, x: Tensor) -> Tensor:
        """d(G_BA(G_AB(x_A)), x_A): the mean squared error."""
        return F.mse_loss(reconstruction, x)

    def adversarial_g(self, fake_out: Tensor) -> Tensor:
        """-E[log D(G(x))] (the loss's own g_loss, unscaled)."""
        return self.loss.g_loss(fake_out)

    def adversarial_d(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """-E[log D(x)] - E[log(1 - D(G(x)))] at full weight (no halving, unlike CycleGAN)."""
        return self.loss.d_loss(real_out, fake_out)
