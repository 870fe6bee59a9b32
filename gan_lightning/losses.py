"""Adversarial losses, each a pair ``d_loss(real_out, fake_out)`` and ``g_loss(fake_out)``.

``real_out``/``fake_out`` are raw critic outputs (logits for the probabilistic losses).
Each D loss takes ``real_label``: 1.0 normally, e.g. 0.9 for one-sided label smoothing
(Salimans et al. 2016), for the losses where a target label exists.

Adding a loss: write the two functions and one ``LOSSES.register`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lightning.registry import Registry


class DLoss(Protocol):
    def __call__(self, real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor: ...


class GLoss(Protocol):
    def __call__(self, fake_out: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class AdversarialLoss:
    d_loss: DLoss
    g_loss: GLoss
    smoothable: bool  # whether one-sided label smoothing means something for it
    # both functions are ``scale`` times the plain expectations (least squares: 1/2, Mao et al.
    # 2017); models whose paper weighs the plain expectation (CycleGAN) divide by it
    scale: float = 1.0


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_real(real_out: Tensor, real_label: float) -> Tensor:
    target = torch.full_like(real_out, real_label)
    return F.binary_cross_entropy_with_logits(real_out, target)


def bce_d_loss(real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logit) (Goodfellow et al. 2014)."""
    return _bce_real(real_out, real_label) + F.softplus(fake_out).mean()


def minimax_g_loss(fake_out: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], the saturating objective of the original minimax game."""
    return -F.softplus(fake_out).mean()


def nonsaturating_g_loss(fake_out: Tensor) -> Tensor:
    """-E[log D(G(z))], the 'non-saturating' heuristic of Goodfellow et al. 2014."""
    return F.softplus(-fake_out).mean()


def wasserstein_d_loss(real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
    """E[D(G(z))] - E[D(x)]: the critic maximises the gap (Arjovsky et al. 2017)."""
    return fake_out.mean() - real_out.mean()


def wasserstein_g_loss(fake_out: Tensor) -> Tensor:
    return -fake_out.mean()


def hinge_d_loss(real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()


def least_squares_d_loss(real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
    """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] with a=0, b=1 (Mao et al. 2017)."""
    return 0.5 * (real_out - real_label).pow(2).mean() + 0.5 * fake_out.pow(2).mean()


def least_squares_g_loss(fake_out: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - c)^2] with c=1 (Mao et al. 2017)."""
    return 0.5 * (fake_out - 1.0).pow(2).mean()


LOSSES.register("minimax")(AdversarialLoss(bce_d_loss, minimax_g_loss, smoothable=True))
LOSSES.register("nonsaturating")(AdversarialLoss(bce_d_loss, nonsaturating_g_loss, smoothable=True))
LOSSES.register("wasserstein")(AdversarialLoss(wasserstein_d_loss, wasserstein_g_loss, smoothable=False))
LOSSES.register("hinge")(AdversarialLoss(hinge_d_loss, wasserstein_g_loss, smoothable=False))
LOSSES.register("least_squares")(
    AdversarialLoss(least_squares_d_loss, least_squares_g_loss, smoothable=True, scale=0.5)
)
