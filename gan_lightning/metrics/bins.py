"""Number of statistically different bins, NDB (Richardson & Weiss 2018, "On GANs and GMMs").

The real features are partitioned into k bins by k-means; real and generated samples are put in
the bin of their nearest centroid, and in each bin the share of real samples is compared with
the share of generated ones by a two-proportion z-test (pooled proportion, two-sided, level
alpha). NDB is the number of bins where the shares differ significantly; NDB/k its share. The
Jensen-Shannon divergence (natural log, so in [0, log 2]) of the two bin histograms is reported
beside it. The paper uses k = 100 on training features and level 0.05.

Baseline: bins fitted to the real points favour those points when the features have many
dimensions compared with the points per bin (a centroid is the mean of its own members), so
even fresh real samples can differ from them in many bins (e.g. i.i.d. Gaussian features,
2048-D, 100 points a bin). Read NDB beside the NDB of held-out real samples against the same
bins (``ndb(train, heldout, k, centroids=...)``), as the paper reports the test set's.
Everything is computed on the CPU (about 1-4 s a Lloyd step for 10,000 x 2048 features and
k = 100 on one core).

k-means is Lloyd's algorithm from a k-means++ start (Arthur & Vassilvitskii 2007: each further
centre drawn with probability proportional to the squared distance to the nearest chosen one),
float64, seeded by a local generator, stopping when no assignment changes or after ``iters``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def _features(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(x).detach().double().cpu()
    return t.reshape(t.shape[0], -1)


def _sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances (len(x), len(c)), clamped at 0 against rounding."""
    return ((x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)).clamp_min(0)


def nearest_centroid(x: Tensor | np.ndarray, centroids: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """(index of the nearest centroid (N,), squared distance to it (N,)) of each row of x."""
    xs, c = _features(x), centroids.double().cpu()
    idx, d2 = [], []
    for start in range(0, len(xs), chunk):
        v, i = _sq_dists(xs[start : start + chunk], c).min(1)
        idx.append(i)
        d2.append(v)
    if not idx:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float64)
    return torch.cat(idx), torch.cat(d2)


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    n = len(x)
    first = int(torch.randint(n, (1,), generator=gen))
    centres = [first]
    d2 = _sq_dists(x, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = float(d2.sum())
        if total > 0:
            nxt = int(torch.multinomial(d2 / total, 1, generator=gen))
        else:  # fewer distinct points than k: any point not yet chosen
            rest = torch.ones(n, dtype=torch.bool)
            rest[centres] = False
            nxt = int(torch.nonzero(rest)[0])
        centres.append(nxt)
        d2 = torch.minimum(d2, _sq_dists(x, x[nxt : nxt + 1])[:, 0])
    return x[centres].clone()


def kmeans(x: Tensor | np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[Tensor, Tensor]:
    """k-means of the rows of x (flattened): (centroids (k, D) float64, assignment (N,) long).

    k-means++ start, then Lloyd steps (assign each point to its nearest centroid, move each
    centroid to the mean of its points) until no assignment changes, at most ``iters`` steps.
    A centroid left without points is moved to the point farthest from its own centroid.
    The result depends only on x, k, seed and iters (torch.Generator seeded with ``seed``).
    """
    xs = _features(x)
    n = len(xs)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= N, got k={k}, N={n}")
    gen = torch.Generator().manual_seed(seed)
    centroids = _kmeans_pp(xs, k, gen)
    assign, d2 = nearest_centroid(xs, centroids)
    for _ in range(iters):
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, xs)
        centroids = sums / counts.clamp_min(1).unsqueeze(1).double()
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):  # reseed at the points worst served by their centroid
            centroids[empty] = xs[d2.argsort(descending=True)[: len(empty)]]
        new_assign, d2 = nearest_centroid(xs, centroids)
        if not len(empty) and bool((new_assign == assign).all()):
            break
        assign = new_assign
    return centroids, assign


def js_divergence(p: Tensor, q: Tensor) -> float:
    """Jensen-Shannon divergence (natural log) of two histograms, each normalised; 0 log 0 = 0."""
    p, q = p.double() / p.double().sum(), q.double() / q.double().sum()
    m = (p + q) / 2

    def kl(a: Tensor) -> float:
        nz = a > 0
        return float((a[nz] * (a[nz] / m[nz]).log()).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def two_proportion_z(k1: Tensor, n1: int, k2: Tensor, n2: int) -> tuple[Tensor, Tensor]:
    """Pooled two-proportion z-test of k1/n1 against k2/n2, elementwise: (z, two-sided p-value).

    z = (k1/n1 - k2/n2) / sqrt(P (1 - P) (1/n1 + 1/n2)), P = (k1 + k2) / (n1 + n2); p = erfc(|z|/sqrt 2).
    Where both shares are 0 or both 1 (P (1 - P) = 0) the shares are equal: z = 0, p = 1.
    """
    k1, k2 = k1.double(), k2.double()
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = (pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt()
    z = torch.where(se > 0, (p1 - p2) / se.clamp_min(1e-300), torch.zeros_like(se))
    return z, torch.special.erfc(z.abs() / math.sqrt(2))


def ndb(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    k: int,
    seed: int = 0,
    alpha: float = 0.05,
    iters: int = 100,
    centroids: Tensor | None = None,
) -> dict[str, object]:
    """NDB of generated features ``fake`` against real features ``real`` with k bins.

    ``centroids`` (k, D) skips the k-means (e.g. bins computed once for a reference set).
    Returns ``ndb`` (int: bins whose p-value < alpha), ``ndb_share`` (ndb / k), ``js`` (JS
    divergence of the bin histograms), and as tensors over bins: ``bins_different`` (ids of the
    significant bins), ``p_values``, ``z``, ``real_share``, ``fake_share``, and ``centroids``.
    """
    xr, xf = _features(real), _features(fake)
    if len(xr) == 0 or len(xf) == 0:
        raise ValueError("ndb needs real and generated samples")
    if xr.shape[1] != xf.shape[1]:
        raise ValueError(f"feature sizes differ: real {xr.shape[1]}, fake {xf.shape[1]}")
    if centroids is None:
        centroids, _ = kmeans(xr, k, seed=seed, iters=iters)
    else:
        centroids = centroids.double().cpu().reshape(len(centroids), -1)
        if len(centroids) != k:
            raise ValueError(f"got {len(centroids)} centroids for k={k}")
    real_counts = torch.bincount(nearest_centroid(xr, centroids)[0], minlength=k)
    fake_counts = torch.bincount(nearest_centroid(xf, centroids)[0], minlength=k)
    z, p_values = two_proportion_z(real_counts, len(xr), fake_counts, len(xf))
    different = torch.nonzero(p_values < alpha).flatten()
    return {
        "ndb": len(different),
        "ndb_share": len(different) / k,
        "js": js_divergence(real_counts, fake_counts),
        "bins_different": different,
        "p_values": p_values,
        "z": z,
        "real_share": real_counts.double() / len(xr),
        "fake_share": fake_counts.double() / len(xf),
        "centroids": centroids,
    }
