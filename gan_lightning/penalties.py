"""Critic regularisers: gradient penalties (a loss term) and weight clipping (a projection).

A penalty is ``fn(critic, real, fake, rand) -> Tensor`` (unweighted; the model multiplies by
``model.penalty.weight``). ``critic`` maps a batch to its outputs (a closure, so conditional
critics fit), ``rand(*shape)`` draws U[0, 1] noise from the model's per-rank generator. The
registry holds it with its capabilities (``per_sample``).

Adding a penalty: write one function and one ``PENALTIES.register`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gan_lightning.precision import is_16bit_mixed
from gan_lightning.registry import ConfigError, Registry

Critic = Callable[[Tensor], Tensor]
Rand = Callable[..., Tensor]
PenaltyFn = Callable[[Critic, Tensor, Tensor, Rand], Tensor]


@dataclass(frozen=True)
class Penalty:
    fn: PenaltyFn
    # built from per-sample input gradients: BatchNorm in the critic would couple the samples
    # (Gulrajani et al. 2017), so nets.d_norm=auto drops it and d_norm=batch is refused
    per_sample: bool

    def __call__(self, critic: Critic, real: Tensor, fake: Tensor, rand: Rand) -> Tensor:
        return self.fn(critic, real, fake, rand)


PENALTIES: Registry[Penalty] = Registry("penalty")


def input_gradient_sq_norm(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample ||d critic(x) / dx||^2, differentiable (double backward)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1)


def input_gradient_norm(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample ||d critic(x) / dx||; the tiny constant keeps sqrt differentiable at 0."""
    return (input_gradient_sq_norm(critic, x) + 1e-12).sqrt()


def _per_sample(rand: Rand, like: Tensor) -> Tensor:
    """U[0,1] with one value per sample, broadcastable against ``like``."""
    return rand(like.shape[0], *([1] * (like.dim() - 1)))


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, rand: Rand) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2], x_hat uniform on segments real-fake (Gulrajani et al. 2017)."""
    eps = _per_sample(rand, real)
    x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
    return (input_gradient_norm(critic, x_hat) - 1.0).pow(2).mean()


def dragan_penalty(critic: Critic, real: Tensor, fake: Tensor, rand: Rand) -> Tensor:
    """DRAGAN: the same penalty around perturbed data, x_p = x + 0.5 std(x) U[0,1] (Kodali et al. 2017)."""
    real = real.detach()
    perturbed = real + 0.5 * real.std() * rand(*real.shape)
    alpha = _per_sample(rand, real)
    x_hat = real + alpha * (perturbed - real)
    return (input_gradient_norm(critic, x_hat) - 1.0).pow(2).mean()


def r1_penalty(critic: Critic, real: Tensor, fake: Tensor, rand: Rand) -> Tensor:
    """R1: 1/2 E[||grad D(x)||^2] on real data, so weight = gamma (Mescheder et al. 2018)."""
    return 0.5 * input_gradient_sq_norm(critic, real).mean()


PENALTIES.register("gp")(Penalty(gradient_penalty, per_sample=True))
PENALTIES.register("dragan")(Penalty(dragan_penalty, per_sample=True))
PENALTIES.register("r1")(Penalty(r1_penalty, per_sample=True))


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float) -> None:
    """WGAN's weight clipping: every critic parameter into [-c, c] (Arjovsky et al. 2017)."""
    for p in module.parameters():
        p.clamp_(-c, c)


def penalty_from_config(cfg: Any) -> Penalty | None:
    """The registered penalty of ``cfg.model.penalty`` (None for ``none``), checked once for every model
    that takes one: a known name, and no 16-bit mixed precision (``cfg.trainer.precision``: the
    penalty's double backward is not loss-scaled there)."""
    model = cfg.model
    if model.penalty.name == "none":
        return None
    penalty = PENALTIES.get(model.penalty.name, "model.penalty.name")
    if is_16bit_mixed(cfg):
        raise ConfigError(
            "bad value for 'trainer.precision': the gradient penalty's double backward is not loss-scaled "
            "under 16-bit mixed precision; use 32-true (with TF32) or bf16-mixed"
        )
    return penalty
