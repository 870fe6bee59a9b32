"""FID and KID math against float64 references (scipy's sqrtm, numpy.cov, explicit sums)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gan_lightning.metrics import StreamingStats, frechet_distance, kid
from gan_lightning.metrics.frechet import polynomial_mmd2_unbiased


def scipy_fid(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's matrix square root (float64)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_stats(d: int, n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = rng.normal(size=(n, d)) @ mix + shift + rng.normal(size=d)
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize(("d", "n"), [(64, 500), (512, 1024)])
def test_frechet_distance_matches_scipy_sqrtm(d: int, n: int) -> None:
    mu1, s1 = gaussian_stats(d, n, seed=1)
    mu2, s2 = gaussian_stats(d, n, seed=2, shift=0.3)
    ours = frechet_distance(mu1, s1, mu2, s2)
    ref = scipy_fid(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-10)


def test_closed_form_for_commuting_covariances_at_inception_size() -> None:
    """At d = 2048 (Inception's features; scipy's sqrtm takes minutes there): covariances sharing
    eigenvectors Q, s_i = Q diag(l_i) Q^T, have tr sqrt(s1 s2) = sum sqrt(l1 l2), so FID =
    ||mu1 - mu2||^2 + sum (sqrt(l1) - sqrt(l2))^2 in closed form, for full, non-diagonal matrices."""
    rng = np.random.default_rng(5)
    d = 2048
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    l1, l2 = rng.gamma(2.0, size=d), rng.gamma(2.0, size=d) * np.linspace(0.1, 3.0, d)
    s1, s2 = (q * l1) @ q.T, (q * l2) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(l1) - np.sqrt(l2)) ** 2).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_identical_inputs_give_zero() -> None:
    mu, s = gaussian_stats(256, 1000, seed=3)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6


def test_more_dimensions_than_samples() -> None:
    """Singular covariances (d > N): no failure, a finite non-negative value, 0 for identical sets."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 300)), rng.normal(size=(50, 300)) + 0.1
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    value = frechet_distance(a.mean(0), s_a, b.mean(0), s_b)
    assert np.isfinite(value) and value > 0
    assert abs(frechet_distance(a.mean(0), s_a, a.mean(0), s_a)) < 1e-6


def test_closed_form_for_diagonal_gaussians() -> None:
    """For diagonal covariances FID = ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2."""
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 4 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
def test_streaming_stats_equal_numpy_cov(batch: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 32)) * 3 + 1000.0  # a large common offset
    s = StreamingStats()
    for i in range(0, len(x), batch):
        s.update(torch.from_numpy(x[i : i + batch]))
    np.testing.assert_allclose(s.mean.numpy(), x.mean(0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.cov.numpy(), np.cov(x, rowvar=False), rtol=0, atol=1e-7)


def test_streaming_stats_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 8)) + 50
    a, b, whole = StreamingStats(), StreamingStats(), StreamingStats()
    a.update(x[:120])
    b.update(x[120:] * 1.0)
    whole.update(x)
    a.merge(b)
    np.testing.assert_allclose(a.cov.numpy(), np.cov(x, rowvar=False), atol=1e-10)
    np.testing.assert_allclose(a.mean.numpy(), whole.mean.numpy(), atol=1e-12)


def explicit_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 written as the double sums of Bińkowski et al. (2018), eq. for KID."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd2_matches_explicit_double_sums() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(15, 5)) + 0.5
    ours = polynomial_mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y))
    assert ours == pytest.approx(explicit_mmd2(x, y), rel=1e-12)


def test_kid_with_one_full_subset_is_the_mmd2_of_the_sets() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) * 1.3
    mean, std = kid(x, y, subsets=1, subset_size=30)
    assert mean == pytest.approx(explicit_mmd2(x, y), rel=1e-12) and std == 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = kid(a, b, subsets=50, subset_size=500)
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kid(a, b + 0.5, subsets=50, subset_size=500)
    assert far > 10 * max(std, 1e-4)
