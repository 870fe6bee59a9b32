"""Two-sample statistics (metrics.two_sample) against references written from the definitions
(numpy/scipy, float64, loops), and against closed forms where one exists."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist
from scipy.stats import binomtest

from gan_lightning.metrics.two_sample import (
    _pairwise_sq_order_stats,
    c2st,
    median_pairwise_distance,
    mmd,
    one_nn_accuracy,
    wasserstein_critic,
)

# ---------------------------------------------------------------------------------------------
# references from the definitions


def mmd_reference(x: np.ndarray, y: np.ndarray, biased: bool = False) -> float:
    """Gretton et al. 2012: unbiased MMD² (eq. 3; ``biased``: the V-statistic, eq. 5), Gaussian
    kernel with σ = median distance over the distinct pairs of the pooled set."""
    sigma = float(np.median(pdist(np.vstack([x, y]))))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if biased or i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if biased or i != j)
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if biased:
        return xx / n**2 + yy / m**2 - 2 * xy / (n * m)
    return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)


def one_nn_reference(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """Xu et al. 2018: each pooled point takes the label of its nearest other point (first index on ties)."""
    z = np.vstack([real, fake])
    labels = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    d = cdist(z, z)
    correct = []
    for i in range(len(z)):
        others = [j for j in range(len(z)) if j != i]
        nearest = others[int(np.argmin(d[i, others]))]
        correct.append(labels[nearest] == labels[i])
    c = np.array(correct, dtype=float)
    return {"accuracy": c.mean(), "accuracy_real": c[: len(real)].mean(), "accuracy_fake": c[len(real) :].mean()}


# ---------------------------------------------------------------------------------------------
# MMD


@pytest.mark.parametrize("seed", [0, 1])
def test_mmd_matches_double_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(30, 4))
    fake = rng.normal(size=(45, 4)) * 1.3 + 0.4
    ref = mmd_reference(real, fake)
    assert mmd(torch.from_numpy(real), torch.from_numpy(fake)) == pytest.approx(ref, abs=1e-12)
    assert mmd(real, fake) == pytest.approx(ref, abs=1e-12)  # numpy in
    r32, f32 = real.astype(np.float32), fake.astype(np.float32)  # float32 in, float64 math
    ref32 = mmd_reference(r32.astype(np.float64), f32.astype(np.float64))
    assert mmd(torch.from_numpy(r32), torch.from_numpy(f32)) == pytest.approx(ref32, abs=1e-12)


def test_mmd_near_zero_for_equal_distributions_and_positive_for_shifted() -> None:
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    same = mmd(real, fake)
    shifted = mmd(real, fake + np.array([1.5, 0.0, 0.0]))
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_mmd_is_unbiased_under_equal_distributions() -> None:
    """The mean over independent equal-distribution draws is 0 within sampling error (σ from the
    pooled set keeps the statistic unbiased); the biased V-statistic on the same draws is not."""
    rng = np.random.default_rng(4)
    draws = [(rng.normal(size=(12, 2)), rng.normal(size=(12, 2))) for _ in range(300)]
    values = np.array([mmd(a, b) for a, b in draws])
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean()) < 4 * se
    assert (values < 0).any()  # the unbiased estimate does go negative
    biased = np.array([mmd_reference(a, b, biased=True) for a, b in draws[:40]])
    assert biased.mean() > 10 * se  # the check above would catch a biased estimate


@pytest.mark.parametrize("n", [57, 58])  # an even and an odd number of pairs
def test_median_pairwise_distance_is_numpys(n: int) -> None:
    z = np.random.default_rng(n).normal(size=(n, 3)) * 5 + 100  # far from the origin: centring matters
    assert median_pairwise_distance(z) == pytest.approx(float(np.median(pdist(z))), rel=1e-13)


@pytest.mark.parametrize(
    "z",
    [
        np.random.default_rng(0).normal(size=(41, 3)),
        np.repeat(np.random.default_rng(1).normal(size=(4, 2)), 12, axis=0),  # piles of equal distances
        np.vstack([np.zeros((30, 2)), np.random.default_rng(2).normal(size=(15, 2))]),  # most pairs at 0
    ],
)
def test_histogram_selection_is_exact(z: np.ndarray) -> None:
    """The chunked selection (forced through several histogram passes by tiny bins and cap) gives
    the exact order statistics of the squared pairwise distances."""
    ref = np.sort(pdist(z) ** 2)
    ranks = [0, len(ref) // 3, (len(ref) - 1) // 2, len(ref) // 2, len(ref) - 1]
    centred = torch.from_numpy(z - z.mean(0))
    got = _pairwise_sq_order_stats(centred, ranks, bins=4, gather_cap=20)
    np.testing.assert_allclose(got, ref[ranks], rtol=1e-12, atol=1e-12)


def test_histogram_selection_resolves_piles_of_nearly_equal_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Piles of values one ulp apart cannot be split by a histogram: the selection peels off the
    minimum of such an interval, and moves past it when the rank lies beyond. The distances are
    replaced by a made-up multiset to reach that case."""
    from gan_lightning.metrics import two_sample

    one_up = math.nextafter(1.0, math.inf)
    values = torch.tensor([3.0] * 16 + [one_up] * 25 + [1.0] * 25, dtype=torch.float64)  # 66 = 12·11/2 pairs
    monkeypatch.setattr(two_sample, "_upper_sq_dists", lambda z, top: iter(values.split(7)))
    z = torch.zeros(12, 2, dtype=torch.float64)
    z[0, 0] = 10.0  # sets the bound on the distances above every value
    ranks = [0, 24, 25, 49, 50, 65]
    got = _pairwise_sq_order_stats(z, ranks, bins=4, gather_cap=10)
    assert got == [1.0, 1.0, one_up, one_up, 3.0, 3.0]


def test_mmd_median_cap_uses_evenly_spaced_pooled_points() -> None:
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.5
    pooled = np.vstack([real, fake])
    idx = np.round(np.linspace(0, len(pooled) - 1, 25)).astype(int)
    sigma = float(np.median(pdist(pooled[idx])))
    assert mmd(real, fake, max_median_points=25) == pytest.approx(mmd(real, fake, sigma=sigma), abs=1e-12)
    assert mmd(real, fake, max_median_points=1000) == mmd(real, fake)


# ---------------------------------------------------------------------------------------------
# 1-NN


@pytest.mark.parametrize("seed", [0, 1])
def test_one_nn_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(30, 3)), rng.normal(size=(45, 3)) * 0.8 + 0.5
    ours = one_nn_accuracy(torch.from_numpy(real), torch.from_numpy(fake))
    ref = one_nn_reference(real, fake)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-15), key


def test_one_nn_ties_go_to_the_lowest_index() -> None:
    """Integer lattice points: many exact distance ties, across and within the sets."""
    rng = np.random.default_rng(6)
    real, fake = rng.integers(0, 4, (40, 2)).astype(float), rng.integers(0, 4, (35, 2)).astype(float)
    assert one_nn_accuracy(real, fake) == pytest.approx(one_nn_reference(real, fake), abs=1e-15)


def test_one_nn_is_a_half_for_two_halves_of_one_sample() -> None:
    z = np.random.default_rng(7).normal(size=(800, 2))
    out = one_nn_accuracy(z[:400], z[400:])
    assert abs(out["accuracy"] - 0.5) < 0.06
    assert out["accuracy"] == pytest.approx((out["accuracy_real"] + out["accuracy_fake"]) / 2)


def test_one_nn_against_one_repeated_image() -> None:
    """Every fake is the same point: a fake's nearest other point is an identical fake (distance
    0), so accuracy_fake = 1; a real point is right unless the fake point is nearer to it than any
    other real point. Far from the reals that never happens: accuracy 1.0."""
    real = np.random.default_rng(8).normal(size=(40, 3))
    far = one_nn_accuracy(real, np.tile(np.full(3, 10.0), (30, 1)))
    assert far == {"accuracy": 1.0, "accuracy_real": 1.0, "accuracy_fake": 1.0}

    centre = np.zeros(3)  # amid the reals: the reals closest to it are classified fake
    near = one_nn_accuracy(real, np.tile(centre, (30, 1)))
    d_real = cdist(real, real) + np.diag(np.full(40, np.inf))
    right = (d_real.min(1) <= np.linalg.norm(real - centre, axis=1)).mean()
    assert near["accuracy_fake"] == 1.0
    assert near["accuracy_real"] == pytest.approx(right) and right < 1.0
    assert near["accuracy"] == pytest.approx((40 * right + 30) / 70)


# ---------------------------------------------------------------------------------------------
# C2ST


def test_c2st_equal_vs_separated_and_exact_p_value() -> None:
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(300, 3)), rng.normal(size=(320, 3))
    equal = c2st(real, fake, seed=0)
    separated = c2st(real, fake + 3.0, seed=0)
    assert equal["n_test"] == separated["n_test"] == 300  # 300 per class kept, half of each tested
    assert abs(equal["accuracy"] - 0.5) < 0.1 and equal["p_value"] > 0.05
    assert separated["accuracy"] > 0.95 and separated["p_value"] < 1e-50
    logistic = c2st(real, fake + 3.0, seed=0, hidden=0)
    for out in (equal, separated, logistic):
        k, n = round(out["accuracy"] * out["n_test"]), int(out["n_test"])
        assert out["p_value"] == pytest.approx(binomtest(k, n, 0.5, alternative="greater").pvalue, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Wasserstein critic


def test_wasserstein_critic_approaches_w1_of_shifted_gaussians() -> None:
    """W1(N(0,1), N(μ,1)) = |μ|. The two-sided gradient penalty lets the critic's slope exceed 1
    where that pays: for a 1-D shift the penalised optimum is the linear f with slope 1 + |μ|/(2λ),
    an estimate of |μ| + μ²/(2λ) (2.2 for μ = 2, λ = 10), hence the upper margins."""
    rng = np.random.default_rng(11)
    real = rng.normal(size=(400, 1))
    kw = {"steps": 100, "hidden": 32}
    same = wasserstein_critic(real, rng.normal(size=(400, 1)), **kw)["wcritic"]
    one = wasserstein_critic(real, rng.normal(size=(400, 1)) + 1.0, **kw)["wcritic"]
    two = wasserstein_critic(real, rng.normal(size=(400, 1)) - 2.0, **kw)["wcritic"]
    assert abs(same) < 0.2
    assert 0.8 < one < 1.3
    assert 1.6 < two < 2.5


# ---------------------------------------------------------------------------------------------
# determinism, global RNG, calling contexts, bad input


def test_seeded_and_independent_of_global_rng() -> None:
    rng = np.random.default_rng(12)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.3
    calls = {
        "mmd": lambda: mmd(real, fake),
        "1nn": lambda: one_nn_accuracy(real, fake),
        "c2st": lambda: c2st(real, fake, seed=3, steps=30),
        "wcritic": lambda: wasserstein_critic(real, fake, seed=3, steps=20),
    }
    for name, call in calls.items():
        torch.manual_seed(1)
        np.random.seed(1)
        torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
        first = call()
        assert torch.equal(torch.get_rng_state(), torch_state), name  # no global draws
        assert np.array_equal(np.random.get_state()[1], numpy_state), name
        torch.manual_seed(2)
        assert call() == first, name
    assert c2st(real, fake, seed=4, steps=30) != c2st(real, fake, seed=3, steps=30)
    assert wasserstein_critic(real, fake, seed=4, steps=20) != wasserstein_critic(real, fake, seed=3, steps=20)


def test_trained_tests_run_under_no_grad_and_inference_mode() -> None:
    rng = np.random.default_rng(13)
    real, fake = torch.from_numpy(rng.normal(size=(40, 2))), torch.from_numpy(rng.normal(size=(40, 2)))
    expected = (c2st(real, fake, steps=10), wasserstein_critic(real, fake, steps=10))
    with torch.no_grad():
        assert (c2st(real, fake, steps=10), wasserstein_critic(real, fake, steps=10)) == expected
    with torch.inference_mode():
        r, f = real.clone(), fake.clone()  # inference tensors
        assert (c2st(r, f, steps=10), wasserstein_critic(r, f, steps=10)) == expected


@pytest.mark.parametrize("fn", [mmd, one_nn_accuracy, c2st, wasserstein_critic])
def test_bad_input(fn) -> None:
    good = np.zeros((5, 3)) + np.arange(5)[:, None]
    with pytest.raises(ValueError, match="dimension"):
        fn(good, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fn(good, np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match=r"at least|non-empty"):
        fn(good[:1], good[:0] if fn is one_nn_accuracy else good[:1])


def test_mmd_refuses_a_zero_bandwidth() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(np.zeros((3, 2)), np.ones((30, 2)))  # most pooled pairs coincide: the median distance is 0
