"""Penalties against critics whose input gradients are known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lightning.nets import build_discriminator
from gan_lightning.penalties import PENALTIES, clip_weights_


def linear_critic(w: torch.Tensor):
    """D(x) = <w, x> + 3: its input gradient is w everywhere."""
    return lambda x: (x.flatten(1) * w).sum(1) + 3.0


def fixed_rand(value: float):
    return lambda *shape: torch.full(shape, value, dtype=torch.float64)


@pytest.mark.parametrize("norm", [0.2, 1.0, 3.0])
@pytest.mark.parametrize("name", ["gp", "dragan"])
def test_gradient_penalty_of_linear_critic(name: str, norm: float) -> None:
    """||grad D|| = ||w|| at every interpolate, so the penalty is (||w|| - 1)^2 exactly."""
    torch.manual_seed(0)
    w = torch.randn(12, dtype=torch.float64)
    w = (w * norm / w.norm()).requires_grad_(True)
    real, fake = torch.randn(5, 3, 2, 2, dtype=torch.float64), torch.randn(5, 3, 2, 2, dtype=torch.float64)
    rand = lambda *s: torch.rand(*s, dtype=torch.float64)  # noqa: E731
    p = PENALTIES[name](linear_critic(w), real, fake, rand)
    assert p.item() == pytest.approx((norm - 1.0) ** 2, rel=1e-9, abs=1e-12)
    # the penalty's own gradient (double backward) is d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    (grad_w,) = torch.autograd.grad(p, w)
    expected = 2 * (norm - 1.0) * w.detach() / norm
    torch.testing.assert_close(grad_w, expected, rtol=1e-8, atol=1e-10)


def test_r1_of_linear_critic() -> None:
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ||w||^2 = 25
    real = torch.randn(7, 2, dtype=torch.float64)
    p = PENALTIES["r1"](linear_critic(w), real, real, fixed_rand(0.5))
    assert p.item() == pytest.approx(12.5, rel=1e-12)


def test_gradient_penalty_at_known_interpolates() -> None:
    """Quadratic critic D(x) = ||x||^2 / 2 has grad x; with eps fixed the interpolates are known."""
    real = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    fake = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    critic = lambda x: 0.5 * x.pow(2).sum(1)  # noqa: E731
    p = PENALTIES["gp"](critic, real, fake, fixed_rand(0.5))
    x_hat = 0.5 * real + 0.5 * fake  # [1.5, 2] (norm 2.5) and [0.5, 1] (norm sqrt(1.25))
    expected = ((x_hat.norm(dim=1) - 1) ** 2).mean()
    assert p.item() == pytest.approx(expected.item(), rel=1e-10)


def test_dragan_perturbs_around_real_data_only() -> None:
    """DRAGAN's interpolates lie within 0.5 std(x) of the real batch: the fake batch is unused."""
    seen = []

    def critic(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return x.sum(1)

    real = torch.randn(64, 4, dtype=torch.float64)
    fake = torch.full((64, 4), 100.0, dtype=torch.float64)
    PENALTIES["dragan"](critic, real, fake, lambda *s: torch.rand(*s, dtype=torch.float64))
    delta = seen[0] - real
    assert (delta >= 0).all() and (delta <= 0.5 * real.std() + 1e-12).all()


def test_weight_clipping_bounds_every_parameter() -> None:
    d = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in d.parameters():
            p.mul_(100)
    clip_weights_(d, 0.01)
    for p in d.parameters():
        assert p.abs().max().item() <= 0.01
    assert any((p.abs() == 0.01).any() for p in d.parameters())  # it clipped, not zeroed


@pytest.mark.parametrize("net", ["dcgan", "mlp"])
def test_spectral_norm_top_singular_value_is_one(net: str) -> None:
    from omegaconf import OmegaConf

    from gan_lightning.schema import NetsConfig

    torch.manual_seed(0)
    nets = OmegaConf.structured(NetsConfig(d=net, d_width=16, mlp_hidden=32))
    d = build_discriminator(nets, (1, 32, 32), "none", spectral_norm=True)
    x = torch.randn(16, 1, 32, 32)
    for _ in range(30):  # power iterations run in train-mode forwards
        d(x)
    d.eval()
    layers = [m for m in d.modules() if hasattr(m, "parametrizations")]
    assert len(layers) >= 3
    for m in layers:
        w = m.weight.detach()
        sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02)
