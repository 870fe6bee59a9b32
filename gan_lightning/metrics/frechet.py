"""Fréchet distance (FID's formula) and KID, in float64.

FID (Heusel et al. 2017): ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
The trace of the matrix square root needs no iterative sqrtm: S1 S2 is similar to
S1^(1/2) S2 S1^(1/2) = B B^T with B = S1^(1/2) S2^(1/2), so tr((S1 S2)^(1/2)) is the sum of the
singular values of B (its nuclear norm). The PSD roots come from symmetric eigendecompositions.
This stays real, needs no regularising offset when covariances are singular (more dimensions
than samples), and singular values carry no square-root amplification of rounding noise.

KID (Bińkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _as64(x: Tensor | np.ndarray) -> Tensor:
    """float64 tensor on the input's device (numpy arrays: CPU)."""
    return x.to(torch.float64) if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float64)


def psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix (rounding-negative eigenvalues -> 0)."""
    vals, vecs = torch.linalg.eigh((s + s.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def trace_sqrt_product(sigma1: Tensor | np.ndarray, sigma2: Tensor | np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2: the nuclear norm of S1^(1/2) S2^(1/2)."""
    return float(torch.linalg.svdvals(psd_sqrt(_as64(sigma1)) @ psd_sqrt(_as64(sigma2))).sum())


def frechet_distance(
    mu1: Tensor | np.ndarray, sigma1: Tensor | np.ndarray, mu2: Tensor | np.ndarray, sigma2: Tensor | np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    m1 = _as64(mu1)
    device = m1.device  # computed where the statistics are (a GPU keeps float64 eigh fast)
    m2, s1, s2 = _as64(mu2).to(device), _as64(sigma1).to(device), _as64(sigma2).to(device)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.numel(), m1.numel()):
        raise ValueError(f"shapes do not match: mu {tuple(m1.shape)} / {tuple(m2.shape)}, sigma {tuple(s1.shape)}")
    diff = m1 - m2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


class StreamingStats:
    """Mean and covariance of feature vectors fed in batches (float64, shifted sums).

    Sums are taken around the first batch's mean, which keeps the covariance exact to float64
    even when features have a large common offset."""

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.shift: Tensor | None = None
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None
        self.dim = dim

    def update(self, feats: Tensor | np.ndarray) -> None:
        x = _as64(feats)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got {tuple(x.shape)}")
        if self.shift is None:
            self.dim = x.shape[1]
            self.shift = x.mean(0)
            self.sum = torch.zeros(self.dim, dtype=torch.float64, device=x.device)
            self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=x.device)
        assert self.sum is not None and self.outer is not None  # set together with self.shift
        xc = x - self.shift
        self.sum += xc.sum(0)
        self.outer += xc.T @ xc
        self.n += x.shape[0]

    def merge(self, other: StreamingStats) -> None:
        """Add another accumulator's samples (e.g. from another rank)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.__dict__.update({k: (v.clone() if isinstance(v, Tensor) else v) for k, v in other.__dict__.items()})
            return
        assert self.shift is not None and self.sum is not None and self.outer is not None
        assert other.shift is not None and other.sum is not None and other.outer is not None
        # re-centre the other sums on this shift: x - a = (x - b) + (b - a)
        delta = other.shift - self.shift
        self.sum += other.sum + other.n * delta
        self.outer += other.outer + torch.outer(other.sum, delta) + torch.outer(delta, other.sum)
        self.outer += other.n * torch.outer(delta, delta)
        self.n += other.n

    @property
    def mean(self) -> Tensor:
        assert self.shift is not None and self.sum is not None
        return self.shift + self.sum / self.n

    @property
    def cov(self) -> Tensor:
        """Unbiased (N - 1) covariance, as numpy.cov."""
        assert self.sum is not None and self.outer is not None
        if self.n < 2:
            raise ValueError("a covariance needs at least 2 samples")
        m = self.sum / self.n
        return (self.outer - self.n * torch.outer(m, m)) / (self.n - 1)


def feature_stats(feats: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """(mean, covariance) of (N, D) features in float64."""
    s = StreamingStats()
    s.update(feats)
    return s.mean, s.cov


def fid_from_features(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    return frechet_distance(mu1, s1, mu2, s2)


def polynomial_mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (float64)."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(
    feats_a: Tensor | np.ndarray,
    feats_b: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial-kernel MMD^2 over ``subsets`` random subsets
    of ``subset_size`` (capped at the smaller set's size) drawn without replacement."""
    a, b = _as64(feats_a).cpu(), _as64(feats_b).cpu()
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        ia = torch.randperm(a.shape[0], generator=g)[:size]
        ib = torch.randperm(b.shape[0], generator=g)[:size]
        values.append(polynomial_mmd2_unbiased(a[ia], b[ib]))
    v = torch.tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std(unbiased=False)) if len(values) > 1 else 0.0
