"""Precision/recall and density/coverage against brute-force loops of the papers' definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_lightning.metrics import prdc


def brute_force(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def radius(points, i, k):
        d = sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)
        return d[k - 1]

    r_real = [radius(real, i, k_pr) for i in range(len(real))]
    r_fake = [radius(fake, j, k_pr) for j in range(len(fake))]
    r_real5 = [radius(real, i, k_dc) for i in range(len(real))]
    precision = np.mean([any(dist(f, real[i]) <= r_real[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= r_fake[j] for j in range(len(fake))) for r in real])
    density = sum(dist(f, real[i]) <= r_real5[i] for f in fake for i in range(len(real))) / (k_dc * len(fake))
    coverage = np.mean([any(dist(f, real[i]) <= r_real5[i] for f in fake) for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("seed", [0, 1])
def test_prdc_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(size=(30, 3)) * 1.4 + 0.3
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake))
    ref = brute_force(real, fake)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_single_k_sets_both() -> None:
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=4)
    ref = brute_force(real, fake, k_pr=4, k_dc=4)
    assert ours == pytest.approx(ref, abs=1e-12)


def test_identical_and_disjoint_sets() -> None:
    x = torch.randn(50, 4, dtype=torch.float64)
    same = prdc(x, x.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_chunking_does_not_change_the_result() -> None:
    from gan_lightning.metrics.precision_recall import kth_neighbour_radii

    x = torch.randn(300, 5, dtype=torch.float64)
    torch.testing.assert_close(kth_neighbour_radii(x, 3, chunk=7), kth_neighbour_radii(x, 3, chunk=1000))
