"""k-means, NDB and the birthday paradox test on point sets whose answer is known by construction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from scipy.optimize import linear_sum_assignment

from gan_lightning.metrics.bins import kmeans, ndb
from gan_lightning.metrics.birthday import birthday_test, duplicate_threshold, save_duplicate_pairs

CENTRES = 10.0 * np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=float)


def mixture(rng: np.random.Generator, counts: list[int], std: float = 0.3) -> np.ndarray:
    """Exactly counts[c] points around CENTRES[c]."""
    return np.concatenate([rng.normal(c, std, (n, 3)) for c, n in zip(CENTRES, counts)])


def test_kmeans_recovers_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    x = mixture(rng, [120, 80, 100, 60, 140])
    centroids, assign = kmeans(torch.from_numpy(x), 5, seed=0)
    assert centroids.dtype == torch.float64 and assign.shape == (500,)
    cost = np.linalg.norm(centroids.numpy()[:, None] - CENTRES[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() < 0.3  # each centre found, up to the scatter of its sample mean
    truth = np.repeat(np.arange(5), [120, 80, 100, 60, 140])
    assert (cols[assign.numpy()] == truth).all()  # every point in its own cluster
    means = np.stack([x[truth == c].mean(0) for c in cols])
    np.testing.assert_allclose(centroids.numpy(), means, rtol=1e-12, atol=1e-12)  # each the mean of its points
    again, _ = kmeans(x, 5, seed=0)
    assert torch.equal(again, centroids)  # seeded: the same result


def test_kmeans_handles_fewer_distinct_points_than_k() -> None:
    x = np.repeat(np.eye(3), 4, axis=0)  # 3 distinct points, k = 5
    centroids, assign = kmeans(x, 5, seed=1)
    assert centroids.shape == (5, 3) and torch.isfinite(centroids).all()
    assert len(assign.unique()) == 3


def reference_ndb(real: np.ndarray, fake: np.ndarray, centroids: np.ndarray, alpha: float) -> dict:
    """Bins by nearest centroid, pooled two-proportion z-test with scipy's normal tail, JS by formula."""
    k = len(centroids)

    def bins(x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[:, None] - centroids[None], axis=2).argmin(1)

    kr, kf = np.bincount(bins(real), minlength=k), np.bincount(bins(fake), minlength=k)
    nr, nf = len(real), len(fake)
    pooled = (kr + kf) / (nr + nf)
    z = (kr / nr - kf / nf) / np.sqrt(pooled * (1 - pooled) * (1 / nr + 1 / nf))
    p = 2 * stats.norm.sf(np.abs(z))
    pr, pf = kr / nr, kf / nf
    m = (pr + pf) / 2
    js = 0.5 * sum(a * np.log(a / b) for a, b in zip(pr, m) if a > 0)
    js += 0.5 * sum(a * np.log(a / b) for a, b in zip(pf, m) if a > 0)
    return {"z": z, "p": p, "js": js, "different": np.flatnonzero(p < alpha)}


def test_ndb_test_statistics_match_scipy() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(0, 1, (800, 4))
    fake = rng.normal(0.15, 1.1, (600, 4))
    centroids = torch.from_numpy(real[rng.choice(800, 12, replace=False)])
    r = ndb(real, fake, 12, centroids=centroids)
    ref = reference_ndb(real, fake, centroids.numpy(), 0.05)
    np.testing.assert_allclose(r["z"].numpy(), ref["z"], rtol=1e-12)
    np.testing.assert_allclose(r["p_values"].numpy(), ref["p"], rtol=1e-9)
    assert r["js"] == pytest.approx(ref["js"], rel=1e-12)
    assert r["bins_different"].tolist() == ref["different"].tolist()
    assert r["ndb"] == len(ref["different"]) and r["ndb_share"] == r["ndb"] / 12


def test_ndb_flags_exactly_the_dropped_cluster() -> None:
    rng = np.random.default_rng(2)
    real = mixture(rng, [480, 480, 480, 480, 80])
    fake = mixture(rng, [500, 500, 500, 500, 0])  # the small cluster dropped, the others 24% -> 25%
    r = ndb(torch.from_numpy(real), torch.from_numpy(fake), 5, seed=0)
    dropped = int(np.linalg.norm(r["centroids"].numpy() - CENTRES[4], axis=1).argmin())
    assert r["bins_different"].tolist() == [dropped]
    assert r["ndb"] == 1 and r["ndb_share"] == pytest.approx(0.2)
    assert 0 < r["js"] <= math.log(2)


def test_ndb_of_equal_distributions_flags_about_nothing() -> None:
    rng = np.random.default_rng(3)
    weights = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    real = mixture(rng, list(rng.multinomial(2000, weights)))
    fake = mixture(rng, list(rng.multinomial(2000, weights)))
    r = ndb(real, fake, 10, seed=0)
    assert r["ndb"] <= 2  # 10 bins at level 0.05: about 0.5 expected by chance
    assert 0 <= r["js"] < 0.01


def test_js_bounds() -> None:
    rng = np.random.default_rng(4)
    real = rng.normal(0, 1, (300, 2))
    r_same = ndb(real, real, 6, seed=0)
    assert r_same["js"] == 0.0 and r_same["ndb"] == 0
    r_apart = ndb(real, real + 100.0, 6, seed=0)  # every fake in the bin farthest out: near-disjoint
    assert 0 < r_apart["js"] <= math.log(2) + 1e-15


def test_birthday_finds_the_support_of_a_finite_generator() -> None:
    rng = np.random.default_rng(5)
    m = 400
    support = rng.normal(0, 1, (m, 8))  # pairwise distances ~4, far above the threshold
    pool = support[rng.integers(0, m, 20000)] + rng.normal(0, 1e-4, (20000, 8))
    r = birthday_test(torch.from_numpy(pool), threshold=0.05, max_size=60, trials=400, seed=0)
    expected = math.sqrt(2 * m * math.log(2))  # 23.5: the batch size with P(duplicate) = 1/2
    assert abs(r["birthday_s"] - expected) <= 3
    assert r["support"] == r["birthday_s"] ** 2
    assert 0.7 * m < r["support_uniform"] < 1.4 * m
    # the estimated curve follows the exact one, 1 - prod_{i<s} (1 - i/M)
    sizes = r["sizes"].numpy()
    exact = 1 - np.array([np.prod(1 - np.arange(s) / m) for s in sizes])
    assert np.abs(r["p_duplicate"].numpy() - exact).max() < 0.1
    pairs, dist = r["pairs"], r["pair_distances"]
    assert pairs.shape == (10, 2) and (dist < 1e-3).all()
    assert np.linalg.norm(pool[pairs[:, 0]] - pool[pairs[:, 1]], axis=1) == pytest.approx(dist.numpy(), rel=1e-12)


def test_birthday_on_continuous_data_finds_no_duplicates() -> None:
    rng = np.random.default_rng(6)
    real = rng.normal(0, 1, (1000, 8))
    fake = rng.normal(0, 1, (3000, 8))
    threshold = duplicate_threshold(real, q=0.001)
    radii = np.sort(np.linalg.norm(real[:, None] - real[None], axis=2) + np.diag(np.full(1000, np.inf)), axis=1)[:, 0]
    assert threshold == pytest.approx(float(np.quantile(radii, 0.001)), rel=1e-12)
    r = birthday_test(fake, real=real, q=0.001, max_size=300, sizes=[2, 10, 50, 100, 200, 300], trials=20, seed=1)
    assert r["threshold"] == pytest.approx(threshold)
    assert math.isinf(r["birthday_s"]) and math.isinf(r["support"])
    assert r["p_duplicate"].max() < 0.5 and r["sizes"].tolist() == [2, 10, 50, 100, 200, 300]


def test_save_duplicate_pairs_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rgb = torch.from_numpy(rng.uniform(0, 1, (6, 3, 8, 8)))
    out = save_duplicate_pairs(rgb, torch.tensor([[0, 1], [2, 5]]), tmp_path / "pairs.png", distances=[0.1, 0.2])
    assert out == tmp_path / "pairs.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 0
    gray = rng.uniform(0, 1, (4, 1, 8, 8))
    assert save_duplicate_pairs(gray, [(0, 3)], tmp_path / "gray.png").is_file()
    assert save_duplicate_pairs(gray, np.zeros((0, 2), dtype=int), tmp_path / "none.png").is_file()


def test_birthday_finds_exact_copies_at_threshold_zero_as_brute_force_does() -> None:
    """Away from the origin the matrix-product distance of an exact copy is ~5e-7, not 0: with a threshold of 0
    (a reference holding exact duplicates) copies were missed (P(dup) 0.535 where brute force says 0.76)."""
    from scipy.spatial.distance import pdist

    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 128, generator=g, dtype=torch.float64) * 3 + 1
    fake = torch.cat([x, x])  # every sample has one exact copy
    r = birthday_test(fake, threshold=0.0, max_size=64, sizes=[16, 32], trials=200, seed=3)
    gen, hits = torch.Generator().manual_seed(3), {16: 0, 32: 0}  # the test's documented draws: a permutation a trial
    for _ in range(200):
        idx = torch.randperm(len(fake), generator=gen)[:64]
        for s in hits:
            hits[s] += bool((pdist(fake[idx[:s]].numpy()) <= 0.0).any())
    assert [float(p) for p in r["p_duplicate"]] == [hits[16] / 200, hits[32] / 200]
