"""Latent-space paths: linear and spherical interpolation, and arithmetic helpers."""

from __future__ import annotations

import torch
from torch import Tensor


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """(1 - t) z0 + t z1 for each t: returns (len(t), *z0.shape)."""
    t = t.view(-1, *([1] * z0.dim())).to(z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation along the great circle between the directions of z0 and z1, with
    the norm interpolated linearly (White 2016, 'Sampling Generative Networks'): for Gaussian z
    it stays where the prior has its mass, unlike the straight line through the origin's region."""
    rows = slerp_rows(z0.reshape(1, -1).expand(len(t), -1), z1.reshape(1, -1).expand(len(t), -1), t, eps)
    return rows.view(len(t), *z0.shape)


def slerp_rows(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Row i: ``slerp`` from z0[i] to z1[i] at t[i]; z0, z1 (N, d), t (N,). The direction turns from
    u0 towards v, the unit part of u1 orthogonal to u0, by t * omega (omega = atan2, exact near 0 and
    pi); opposite directions, where any great circle will do, turn through a fixed perpendicular
    (``perpendicular``) instead of passing through the origin."""
    t = t.view(-1, 1).to(z0)
    n0, n1 = z0.norm(dim=1, keepdim=True), z1.norm(dim=1, keepdim=True)
    u0, u1 = z0 / n0.clamp_min(eps), z1 / n1.clamp_min(eps)
    cos = (u0 * u1).sum(1, keepdim=True)
    across = u1 - cos * u0
    sin = across.norm(dim=1, keepdim=True)
    v = torch.where(sin > eps, across / sin.clamp_min(eps), perpendicular(u0, eps))
    omega = torch.atan2(sin, cos)
    curved = (torch.cos(t * omega) * u0 + torch.sin(t * omega) * v) * ((1 - t) * n0 + t * n1)
    straight = (1 - t) * z0 + t * z1  # an endpoint at the origin has no direction: the line is the path
    return torch.where(torch.minimum(n0, n1) > eps, curved, straight)


def perpendicular(u: Tensor, eps: float = 1e-7) -> Tensor:
    """Per row of unit vectors u (N, d): a unit vector orthogonal to it, from the basis vector along
    u's smallest coordinate (never near u when d > 1); zero when d = 1, which has none."""
    e = torch.zeros_like(u).scatter_(1, u.abs().argmin(dim=1, keepdim=True), 1.0)
    w = e - (e * u).sum(1, keepdim=True) * u
    norm = w.norm(dim=1, keepdim=True)
    return torch.where(norm > eps, w / norm.clamp_min(eps), torch.zeros_like(w))


def interpolation_grid(z0: Tensor, z1: Tensor, points: int, mode: str = "slerp") -> Tensor:
    """(pairs * points, z_dim): each row of a grid walks from z0[i] to z1[i]."""
    t = torch.linspace(0, 1, points)
    fn = slerp if mode == "slerp" else lerp
    return torch.cat([fn(a, b, t) for a, b in zip(z0, z1)])
