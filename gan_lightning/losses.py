"""Adversarial losses, each a pair ``d_loss(real_out, fake_out)`` and ``g_loss(fake_out)``.

``real_out``/``fake_out`` are raw critic outputs (logits for the probabilistic losses).
Each D loss takes ``real_label``: 1.0 normally, e.g. 0.9 for one-sided label smoothing
(Salimans et al. 2016), for the losses where a target label exists.

Adding a loss: write the two functions and one ``LOSSES.register`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    # outputs are energies of an autoencoder critic (EBGAN, BEGAN), not scores of a plain critic
    energy: bool = False
    # D's output on the real/fake boundary, where one exists (ADA's sign(D(x)) reads it); None
    # where the output has no fixed origin (a Wasserstein critic is defined up to a constant)
    decision: float | None = None
    # whether D's loss with the real and fake sides swapped is a sound generator objective (BiGAN/ALI train
    # G and E so): it is for BCE (the non-saturating game), least squares and Wasserstein; hinge's goes
    # flat once the margins hold, and the asymmetric f-divergences have no such game in their paper
    flips: bool = True


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


LOSSES.register("minimax")(AdversarialLoss(bce_d_loss, minimax_g_loss, smoothable=True, decision=0.0))
LOSSES.register("nonsaturating")(AdversarialLoss(bce_d_loss, nonsaturating_g_loss, smoothable=True, decision=0.0))
LOSSES.register("wasserstein")(AdversarialLoss(wasserstein_d_loss, wasserstein_g_loss, smoothable=False))
LOSSES.register("hinge")(AdversarialLoss(hinge_d_loss, wasserstein_g_loss, smoothable=False, decision=0.0, flips=False))
LOSSES.register("least_squares")(
    AdversarialLoss(least_squares_d_loss, least_squares_g_loss, smoothable=True, scale=0.5, decision=0.5)
)


def energy_d_loss(real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
    """E[e(x)]: the real data's energy (reconstruction error of an autoencoder critic). EBGAN's
    margin and BEGAN's k_t term on the fakes are the models' own D terms."""
    return real_out.mean()


def energy_g_loss(fake_out: Tensor) -> Tensor:
    """E[e(G(z))] (Zhao et al. 2017; Berthelot et al. 2017)."""
    return fake_out.mean()


LOSSES.register("energy")(AdversarialLoss(energy_d_loss, energy_g_loss, smoothable=False, energy=True))


# ----------------------------------------------------------------------------- f-GAN
# Nowozin et al. 2016, "f-GAN", Table 2: each f-divergence D_f(P||Q) = E_Q[f(p/q)] is bounded below
# by E_P[T(x)] - E_Q[f*(T(x))] over critics T = g_f(V) with the output activation g_f that keeps T
# in the domain of the convex conjugate f*. D maximises the bound; G uses the paper's practical
# objective, maximising E_Q[g_f(V(G(z)))] (its section 3.2). Below, each pair is written in terms
# of the raw output V, simplified so that no exp/log of a large value is taken.
@dataclass(frozen=True)
class FDivergence:
    """``t(v)`` = g_f(v) and ``conjugate_of_t(v)`` = f*(g_f(v)), both of the raw output v."""

    t: Callable[[Tensor], Tensor]
    conjugate_of_t: Callable[[Tensor], Tensor]

    def d_loss(self, real_out: Tensor, fake_out: Tensor, real_label: float = 1.0) -> Tensor:
        """-(E_P[g_f(V)] - E_Q[f*(g_f(V))]): minus the variational lower bound of D_f."""
        return self.conjugate_of_t(fake_out).mean() - self.t(real_out).mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        """-E_Q[g_f(V(G(z)))]."""
        return -self.t(fake_out).mean()


LOG2 = math.log(2.0)
F_DIVERGENCES: dict[str, FDivergence] = {
    # KL: g_f(v) = v, f*(t) = exp(t - 1)
    "kl": FDivergence(lambda v: v, lambda v: torch.exp(v - 1.0)),
    # reverse KL: g_f(v) = -exp(-v), f*(t) = -1 - log(-t) = v - 1
    "reverse_kl": FDivergence(lambda v: -torch.exp(-v), lambda v: v - 1.0),
    # Pearson chi^2: g_f(v) = v, f*(t) = t^2/4 + t
    "pearson": FDivergence(lambda v: v, lambda v: 0.25 * v * v + v),
    # Neyman chi^2: g_f(v) = 1 - exp(-v), f*(t) = 2 - 2 sqrt(1 - t) = 2 - 2 exp(-v/2)
    "neyman": FDivergence(lambda v: 1.0 - torch.exp(-v), lambda v: 2.0 - 2.0 * torch.exp(-0.5 * v)),
    # squared Hellinger: g_f(v) = 1 - exp(-v), f*(t) = t / (1 - t) = exp(v) - 1
    "hellinger": FDivergence(lambda v: 1.0 - torch.exp(-v), lambda v: torch.expm1(v)),
    # Jensen-Shannon: g_f(v) = log 2 - log(1 + exp(-v)), f*(t) = -log(2 - exp(t)) = softplus(v) - log 2
    "js": FDivergence(lambda v: LOG2 - F.softplus(-v), lambda v: F.softplus(v) - LOG2),
    # GAN: g_f(v) = -log(1 + exp(-v)), f*(t) = -log(1 - exp(t)) = softplus(v)
    "gan": FDivergence(lambda v: -F.softplus(-v), lambda v: F.softplus(v)),
}

for _name, _div in F_DIVERGENCES.items():
    LOSSES.register(f"fgan_{_name}")(AdversarialLoss(_div.d_loss, _div.g_loss, smoothable=False, flips=False))
