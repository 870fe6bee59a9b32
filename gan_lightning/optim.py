"""Optimizers by name, and the learning-rate schedules."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from gan_lightning.registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


def fused_on_cpu(params: list[Any], kw: dict[str, Any]) -> dict[str, Any]:
    """``fused=True`` for float32 parameters all on the CPU, unless ``kw`` chooses the implementation:
    torch's default there is a loop over tensors, ~4x slower per Adam step on the lab's D (a one-thread
    micro-benchmark, 2026-11-27; on the lab's whole step the plain loop gains ~6 %,
    ``benchmarks/results/toy_cpu.json``); on CUDA torch already picks its multi-tensor kernels."""
    tensors = all(isinstance(p, torch.Tensor) for p in params)  # not param-group dicts
    if kw or not params or not tensors or any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        return {}
    return {"fused": True}


@OPTIMIZERS.register("adam")
def _adam(params: Iterable[nn.Parameter], lr: float, o: Any, /, **kw: Any) -> torch.optim.Optimizer:
    params = list(params)
    kw = {**fused_on_cpu(params, kw), **kw}
    return torch.optim.Adam(params, **{"lr": lr, **kw}, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params: Iterable[nn.Parameter], lr: float, o: Any, /, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, **{"lr": lr, **kw}, alpha=o.alpha, eps=o.eps, weight_decay=o.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[nn.Parameter], lr: float, o: Any, /, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, **{"lr": lr, **kw}, momentum=o.betas[0], weight_decay=o.weight_decay)


def build_optimizer(params: Iterable[nn.Parameter], lr: float, o: Any, /, **kw: Any) -> torch.optim.Optimizer:
    """``kw`` overrides constructor arguments (the fast path's ``capturable`` and tensor ``lr``)."""
    return OPTIMIZERS.get(o.name, "optim.name")(params, lr, o, **kw)


def lazy_adjusted(lr: float, o: Any, every: int) -> tuple[float, Any]:
    """(lr, optimizer config) for parameters whose regulariser runs every ``every`` = k steps:
    lr x c and each beta ^ c (RMSprop's alpha too, its beta2) with c = k / (k + 1), the paper's
    hyperparameters (Karras et al. 2020, appendix B). There c makes up for a separate regulariser
    step, k + 1 optimizer steps per k minibatches; this loop adds the lazy term (x k) to the k-th
    step's own loss, so it takes k steps and the per-minibatch lr is c times the base lr (G's
    2.5e-3 -> 2e-3 at k = 4), the value the official code's main steps use. Adam reads both betas,
    SGD its momentum (``betas[0]``), RMSprop its alpha. k = 1: unchanged."""
    if every <= 1:
        return lr, o
    c = every / (every + 1)
    return lr * c, OmegaConf.merge(o, {"betas": [float(b) ** c for b in o.betas], "alpha": float(o.alpha) ** c})


def lr_factor(step: int, steps: int, schedule: str, decay_start: float) -> float:
    """Multiplier of the base lr after ``step`` generator steps: constant, or linear from 1 at
    ``start = decay_start * steps`` towards 0 at ``steps`` (the CycleGAN schedule, Zhu et al. 2017). G step
    s + 1 runs at ``lr_factor(s)``: steps 1 … start + 1 at the full lr and the last at 1 / (steps - start),
    one step later than the CycleGAN code's epochs (a choice pinned by the resume tests, not reaching 0)."""
    if schedule == "constant":
        return 1.0
    start = int(decay_start * steps)
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(1, steps - start))


def first_changed_lr_step(done: int, old_steps: int, new_steps: int, schedule: str, decay_start: float) -> int | None:
    """The first ``s < done`` whose ``lr_factor`` differs between a run of ``old_steps`` and one of ``new_steps``
    (the lr of G step ``s + 1``), or None: whether a run ``done`` steps into the first is also ``done`` steps
    into the second. Both factors are 1 before the earlier decay start, so only the steps from there are compared."""
    if schedule == "constant" or old_steps == new_steps:
        return None
    first = min(int(decay_start * old_steps), int(decay_start * new_steps))
    for s in range(first, done):
        if lr_factor(s, old_steps, schedule, decay_start) != lr_factor(s, new_steps, schedule, decay_start):
            return s
    return None


def extension_conflict(done: int, old_steps: int, new_steps: int, optim: Any) -> str | None:
    """Why a run ``done`` G steps into ``old_steps`` cannot become a ``new_steps`` run (its lr schedule
    differs at a step already done), or None."""
    s = first_changed_lr_step(done, old_steps, new_steps, str(optim.schedule), float(optim.decay_start))
    if s is None:
        return None
    old, new = (lr_factor(s, n, str(optim.schedule), float(optim.decay_start)) for n in (old_steps, new_steps))
    return (
        f"steps={new_steps} changes the learning rate of G steps already done: optim.schedule="
        f"{optim.schedule} (decay after {optim.decay_start} x steps) gave G step {s + 1} the factor {old:.4g} at "
        f"steps={old_steps} and gives it {new:.4g} at steps={new_steps}, and {done} steps are done"
    )
