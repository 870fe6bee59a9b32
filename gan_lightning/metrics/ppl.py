"""Perceptual path length (Karras et al. 2019, StyleGAN, sec. 4.2): how much the images change
along short steps of latent interpolations (``metrics.names=[ppl]``, ``evaluate --metrics ppl``).

For ``metrics.ppl_n`` pairs of latents and t ~ U(0, 1), with eps = 1e-4:

    ppl = E[ d(G(p(t)), G(p(t + eps))) / eps^2 ]

- the path p: in W (``metrics.ppl_space=w``, the default) the lerp between w1 = f(z1) and
  w2 = f(z2), for generators that map z to w (their ``w_space`` capability: the style
  generator's ``mapping`` and ``from_w``); in Z (``ppl_space=z``, and every generator without a
  mapping) the slerp between z1 and z2 (``gan_lightning.latent.slerp_rows``: the great circle
  between their directions, the norm interpolated linearly; for the style generator, whose
  mapping pixel-normalises z, the same images as the paper's slerp of unit vectors);
- the distance d: the paper's LPIPS on VGG-16 has no weights offline, so d is the squared
  Euclidean distance between the unit-normalised features of the evaluator's feature space
  (``metrics.features``: the domain classifier's 128-d penultimate layer by default, Inception's
  2048-d pool features with ``inception``), like LPIPS a squared distance of normalised deep
  features; values are therefore not comparable with the paper's numbers, only between models
  measured in the same space;
- the mean is taken after discarding the 1 % lowest and 1 % highest values (the paper's filter
  of outliers).

The images are G's outputs in eval mode (the style generator's fixed noise images, so both
points of a pair share their noise), mapped to [0, 1] without clipping. Conditional models keep
one requested class per pair. Pairs, t and the classes come from a fixed seed, so the EMA and the
raw generator are measured on the same paths (and every DDP rank computes the same value).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gan_lightning.latent import slerp_rows
from gan_lightning.metrics.evaluator import metric
from gan_lightning.metrics.features import full_float32
from gan_lightning.nets import capability
from gan_lightning.registry import ConfigError

EPSILON = 1e-4  # the step along the path (Karras et al. 2019, sec. 4.2)
OUTLIER_SHARE = 0.01  # the share of lowest and of highest values discarded (Karras et al. 2019, sec. 4.2)
PPL_SPACES = ("w", "z")


def path_points(a: Tensor, b: Tensor, t: Tensor, space: str) -> Tensor:
    """Row i: the point at t[i] on the path from a[i] to b[i]: lerp in W, slerp in Z."""
    if space == "w":
        return torch.lerp(a, b, t.view(-1, 1).to(a))
    return slerp_rows(a, b, t)


def pair_distances(
    generate: Callable[[Tensor], Tensor],
    embed: Callable[[Tensor], Tensor],
    a: Tensor,
    b: Tensor,
    t: Tensor,
    space: str,
    epsilon: float = EPSILON,
) -> Tensor:
    """(N,) float64: ||e(G(p(t))) - e(G(p(t + eps)))||^2 / eps^2 per pair, e the unit-normalised
    ``embed`` of G's images, p the path of ``space`` from a to b; one batch of ``generate``."""
    points = torch.cat([path_points(a, b, t, space), path_points(a, b, t + epsilon, space)])
    feats = embed(generate(points)).double().flatten(1)
    feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)
    f0, f1 = feats.chunk(2)
    return (f0 - f1).square().sum(1) / epsilon**2


def filtered_mean(values: Tensor, share: float = OUTLIER_SHARE) -> float:
    """The mean of the ``values`` between the (100 share)-th percentile rounded down to a sample and the
    (100 - 100 share)-th rounded up (StyleGAN's metric code: ties at either end are kept)."""
    v = values.double()
    lo = torch.quantile(v, share, interpolation="lower")
    hi = torch.quantile(v, 1 - share, interpolation="higher")
    return float(v[(lo <= v) & (v <= hi)].mean())


def ppl_space_of(net: Any, requested: str) -> str:
    """'w' where it is asked for and ``net`` maps z to w (its ``w_space`` capability), else 'z'."""
    if requested not in PPL_SPACES:
        raise ConfigError(f"bad value for 'metrics.ppl_space': w or z, got '{requested}'")
    return "w" if requested == "w" and capability(net, "w_space") else "z"


def points_generator(model: Any, net: Any, y: Tensor | None) -> Callable[[Tensor], Tensor]:
    """G of z-space points: the batch is both ends of the pairs, so the classes ``y`` repeat."""
    both = None if y is None else torch.cat([y, y])
    return lambda points: model.generate(points, net, both)


@torch.no_grad()
def perceptual_path_length(
    model: Any,
    net: Any,
    embed: Callable[[Tensor], Tensor],
    n: int,
    space: str = "w",
    batch_size: int = 250,
    seed: int = 0,
    epsilon: float = EPSILON,
) -> float:
    """PPL of generator ``net`` of ``model`` over ``n`` seeded pairs (see the module doc);
    ``embed`` maps [0, 1] images to features."""
    if n < 1:
        raise ConfigError(f"bad value for 'metrics.ppl_n': must be >= 1 pairs, got {n}")
    space = ppl_space_of(net, space)
    g = torch.Generator().manual_seed(seed)
    z1, z2 = model.draw_z(n, g), model.draw_z(n, g)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    labels = model.labels_for(n)
    device = model.device
    was_training = net.training
    net.eval()
    out = []
    try:  # full float32: TF32's 10-bit mantissa (relative error ~5e-4) would swamp the eps = 1e-4 difference
        with full_float32():
            for i in range(0, n, batch_size):
                a, b = z1[i : i + batch_size].to(device), z2[i : i + batch_size].to(device)
                y = None if labels is None else labels[i : i + batch_size].to(device)
                if space == "w":
                    a, b = net.mapping(a), net.mapping(b)
                generate = net.from_w if space == "w" else points_generator(model, net, y)
                tb = t[i : i + batch_size].to(device=device, dtype=a.dtype)
                out.append(pair_distances(generate, lambda x: embed((x + 1) / 2), a, b, tb, space, epsilon).cpu())
    finally:
        net.train(was_training)
    return filtered_mean(torch.cat(out))


@metric("ppl", {"ppl": False}, "ppl", ("generator",))
def _ppl(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Perceptual path length in W (or Z) with distances in the evaluator's feature space (see
    gan_lightning/metrics/ppl.py)."""
    if ctx.generator is None:
        raise ConfigError("metric 'ppl' needs the generator: use it in training or `evaluate`")
    model, net = ctx.generator
    space = ppl_space_of(net, ctx.ppl_space)
    if space != ctx.ppl_space and "ppl_space" not in ctx.notes:
        print(f"[ppl] {type(net).__name__} has no mapping network: ppl in Z (slerp), not in W", file=sys.stderr)
    ctx.notes["ppl_space"] = space
    extractor = ctx.extractor("feats")

    def embed(images01: Tensor) -> Tensor:
        return extractor.smooth_features(images01.float().to(ctx.device))  # no 8-bit rounding: eps is 1e-4

    value = perceptual_path_length(model, net, embed, ctx.ppl_n, space, ctx.batch_size)
    return {"ppl": value}
