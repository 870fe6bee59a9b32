"""Latent inversion: the z whose G(z) is closest to a given image, found by gradient descent.

The reconstruction-error measure (Borji 2019's table; Xiang & Li 2017) and image editing both
start here. Each image's z is optimised on its own squared error, so the images of a batch do
not interact (G runs in eval mode); only z gets gradients, the generator's parameters and their
``.grad`` are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def invert(
    generate: Callable[[Tensor], Tensor],
    targets: Tensor,
    z_dim: int,
    steps: int = 200,
    lr: float = 0.05,
    restarts: int = 1,
    seed: int = 0,
    start: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(z, per-image mean squared error of G(z) against ``targets``), the best of ``restarts``
    seeded random starts (or ``start``, e.g. an encoder's output, as the first), each refined by
    ``steps`` Adam steps. ``generate`` maps (B, z_dim) to images shaped like ``targets``."""
    if restarts < 1 or steps < 0:
        raise ValueError(f"need restarts >= 1 and steps >= 0, got {restarts} and {steps}")
    g = torch.Generator().manual_seed(seed)
    targets = targets.detach()
    best_z = best_err = None
    for r in range(restarts):
        z0 = start if (r == 0 and start is not None) else torch.randn(len(targets), z_dim, generator=g)
        z = z0.detach().clone().to(targets).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            with torch.enable_grad():
                err = (generate(z) - targets).pow(2).flatten(1).mean(1)
                (grad,) = torch.autograd.grad(err.sum(), z)  # per-image losses: independent z's
            opt.zero_grad(set_to_none=True)
            z.grad = grad
            opt.step()
        with torch.no_grad():
            err = (generate(z) - targets).pow(2).flatten(1).mean(1)
        z_final = z.detach()
        if best_err is None or best_z is None:
            best_z, best_err = z_final, err
        else:
            better = err < best_err
            best_z = torch.where(better[:, None], z_final, best_z)
            best_err = torch.where(better, err, best_err)
    assert best_z is not None and best_err is not None
    return best_z, best_err
