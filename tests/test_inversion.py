"""Latent inversion against the closed form of a linear generator (least squares)."""

from __future__ import annotations

import torch
from torch import nn

from gan_lightning.inversion import invert


def test_linear_generator_reaches_the_least_squares_optimum() -> None:
    torch.manual_seed(0)
    g = nn.Linear(4, 12, bias=True).double()
    targets = torch.randn(6, 12, dtype=torch.float64)
    z, err = invert(g, targets, z_dim=4, steps=600, lr=0.05, seed=1)
    # closed form: z* = argmin ||W z + b - x||^2 = lstsq(W, x - b)
    w, b = g.weight.detach(), g.bias.detach()
    z_star = torch.linalg.lstsq(w, (targets - b).T).solution.T
    err_star = (z_star @ w.T + b - targets).pow(2).mean(1)
    assert torch.allclose(err, err_star, rtol=1e-6, atol=1e-9)
    assert torch.allclose(z.double(), z_star, atol=1e-3)
    assert g.weight.grad is None and g.bias.grad is None  # G untouched


def test_restarts_keep_the_best_start_per_image_and_are_seeded() -> None:
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 8)).double()
    targets = torch.randn(5, 8, dtype=torch.float64)
    one = invert(g, targets, 3, steps=20, restarts=1, seed=3)[1]
    many = invert(g, targets, 3, steps=20, restarts=4, seed=3)[1]
    assert bool((many <= one).all())  # the first start is shared, the others can only help
    again = invert(g, targets, 3, steps=20, restarts=4, seed=3)[1]
    assert torch.equal(many, again)


def test_random_starts_are_not_the_z_that_sample_draws_for_the_same_seed() -> None:
    """`sample --seed s` draws z = randn(n, z_dim) from a generator seeded with s, and `invert --seed s`
    (both default to 0) must not start from those z: inverting sampled images would then begin at
    the answer and report a perfect inversion after no work."""
    g = nn.Linear(4, 12).double()
    targets = torch.zeros(6, 12, dtype=torch.float64)
    for seed in (0, 3):
        z, _ = invert(g, targets, z_dim=4, steps=0, seed=seed)
        sampled = torch.randn(6, 4, generator=torch.Generator().manual_seed(seed))
        assert float((z.float() - sampled).abs().max()) > 0.1
        assert torch.equal(z, invert(g, targets, z_dim=4, steps=0, seed=seed)[0])  # still seeded
    assert not torch.equal(invert(g, targets, 4, steps=0, seed=0)[0], invert(g, targets, 4, steps=0, seed=1)[0])
