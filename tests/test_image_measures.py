"""PSNR, SSIM, radial power spectrum and Parzen log-likelihood against float64 numpy/scipy references written
from the definitions (explicit windows, correlate2d, logsumexp), plus closed forms and invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import scipy.special
import scipy.stats
import torch

from gan_lightning.metrics.image_measures import (
    mean_power_spectrum,
    parzen_log_density,
    parzen_log_likelihood,
    psnr,
    radial_profile,
    spectrum_distance,
    ssim,
)


def rand_images(n: int, c: int, h: int, w: int, seed: int, smooth: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, c, h, w))
    if smooth:
        x = scipy.ndimage.gaussian_filter(x, sigma=(0, 0, smooth, smooth))
        x = (x - x.min()) / (x.max() - x.min())
    return x


# ------------------------------------------------------------------------------------------- PSNR


def test_psnr_matches_numpy_formula() -> None:
    x = rand_images(4, 3, 9, 7, seed=0)
    y = np.clip(
        x + np.random.default_rng(1).normal(scale=[[[[0.01]]], [[[0.05]]], [[[0.1]]], [[[0.2]]]], size=x.shape), 0, 1
    )
    ref = np.mean([10 * np.log10(1.0 / np.mean((a - b) ** 2)) for a, b in zip(x, y)])
    assert psnr(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-12)
    ref255 = np.mean([10 * np.log10(255.0**2 / np.mean((255 * a - 255 * b) ** 2)) for a, b in zip(x, y)])
    assert psnr(torch.from_numpy(255 * x), torch.from_numpy(255 * y), data_range=255.0) == pytest.approx(
        ref255, rel=1e-12
    )


@pytest.mark.parametrize("c", [0.05, -0.1, 0.01])
def test_psnr_of_constant_offset(c: float) -> None:
    x = 0.2 + 0.6 * rand_images(3, 1, 8, 8, seed=2)
    assert psnr(torch.from_numpy(x), torch.from_numpy(x + c)) == pytest.approx(20 * math.log10(1 / abs(c)), rel=1e-10)


def test_psnr_identical_is_inf() -> None:
    x = torch.from_numpy(rand_images(2, 3, 5, 5, seed=3))
    assert psnr(x, x) == math.inf
    assert psnr(x, x.clone()) == math.inf


# ------------------------------------------------------------------------------------------- SSIM


def ssim_reference(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5, L: float = 1.0) -> float:
    """Wang et al. 2004 written directly: explicit 2-D Gaussian window, correlate2d 'valid', per channel."""
    win = np.zeros((size, size))
    c = (size - 1) / 2
    for i in range(size):
        for j in range(size):
            win[i, j] = math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma**2))
    win /= win.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    per_image = []
    for a, b in zip(x, y):
        maps = []
        for pa, pb in zip(a, b):

            def filt(t: np.ndarray) -> np.ndarray:
                return scipy.signal.correlate2d(t, win, mode="valid")

            mu_a, mu_b = filt(pa), filt(pb)
            s_a = filt(pa * pa) - mu_a**2
            s_b = filt(pb * pb) - mu_b**2
            s_ab = filt(pa * pb) - mu_a * mu_b
            maps.append(((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_a + s_b + c2)))
        per_image.append(np.mean(maps))
    return float(np.mean(per_image))


@pytest.mark.parametrize(("size", "shape"), [(11, (3, 3, 20, 24)), (7, (2, 1, 12, 9)), (11, (2, 1, 28, 28))])
def test_ssim_matches_reference(size: int, shape: tuple[int, int, int, int]) -> None:
    x = rand_images(*shape, seed=4, smooth=1.0)
    y = np.clip(x + np.random.default_rng(5).normal(scale=0.1, size=x.shape), 0, 1)
    ours = ssim(torch.from_numpy(x), torch.from_numpy(y), win_size=size)
    assert ours == pytest.approx(ssim_reference(x, y, size=size), abs=1e-12)
    ours255 = ssim(torch.from_numpy(255 * x), torch.from_numpy(255 * y), data_range=255.0, win_size=size)
    assert ours255 == pytest.approx(ours, abs=1e-12)


def test_ssim_identity_symmetry_and_monotone() -> None:
    x = rand_images(3, 3, 28, 28, seed=6, smooth=1.5)
    tx = torch.from_numpy(x)
    assert ssim(tx, tx) == pytest.approx(1.0, abs=1e-12)
    noise = np.random.default_rng(7).normal(size=x.shape)
    noisy = [ssim(tx, torch.from_numpy(x + s * noise)) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a > b for a, b in itertools.pairwise(noisy)) and noisy[0] < 1
    blurred = [ssim(tx, torch.from_numpy(scipy.ndimage.gaussian_filter(x, (0, 0, s, s)))) for s in (0.5, 1.0, 2.0)]
    assert all(a > b for a, b in itertools.pairwise(blurred)) and blurred[0] < 1
    ty = torch.from_numpy(x + 0.1 * noise)
    assert ssim(tx, ty) == pytest.approx(ssim(ty, tx), abs=1e-14)


def test_ssim_rejects_small_images_and_mismatch() -> None:
    with pytest.raises(ValueError, match="smaller"):
        ssim(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10))
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.zeros(1, 1, 12, 12), torch.zeros(1, 1, 12, 13))


# --------------------------------------------------------------------------------------- spectrum


def test_cosine_energy_at_its_radius() -> None:
    h = w = 32
    k = 5
    i = np.arange(h)[:, None] * np.ones((1, w))
    img = 0.5 + 0.4 * np.cos(2 * np.pi * k * i / h)
    p = mean_power_spectrum(torch.from_numpy(np.repeat(img[None, None], 3, axis=1)))
    assert p.shape == (h, w) and p.dtype == torch.float64
    # exact lines: DC (0.5 h w)^2 at the centre, (0.2 h w)^2 at rows centre +- k
    assert float(p[h // 2, w // 2]) == pytest.approx((0.5 * h * w) ** 2, rel=1e-12)
    assert float(p[h // 2 + k, w // 2]) == pytest.approx((0.2 * h * w) ** 2, rel=1e-12)
    prof = radial_profile(p)
    assert len(prof) == h // 2 + 1
    others = np.delete(prof.numpy(), [0, k])
    assert others.max() < 1e-12 * float(prof[k])
    counts = np.bincount(
        np.round(np.hypot(*np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2))).astype(int).ravel()
    )
    assert float(prof[k]) == pytest.approx(2 * (0.2 * h * w) ** 2 / counts[k], rel=1e-12)


def test_parseval() -> None:
    x = rand_images(3, 3, 12, 10, seed=8)
    gray = x.mean(1)
    p = mean_power_spectrum(torch.from_numpy(x))
    assert float(p.sum()) == pytest.approx(12 * 10 * np.mean((gray**2).sum((1, 2))), rel=1e-12)
    ref = np.fft.fftshift(np.mean(np.abs(np.fft.fft2(gray)) ** 2, axis=0))
    np.testing.assert_allclose(p.numpy(), ref, rtol=1e-12)


def test_spectrum_distance_identical_blurred_noisy() -> None:
    real = rand_images(16, 1, 28, 28, seed=9, smooth=1.0) * 0.6 + 0.2
    same = spectrum_distance(torch.from_numpy(real), torch.from_numpy(real.copy()))
    assert same == {"spectrum": 0.0, "spectrum_hf_ratio": 1.0}
    blurred = scipy.ndimage.gaussian_filter(real, sigma=(0, 0, 1.5, 1.5))
    noisy = real + np.random.default_rng(10).normal(scale=0.05, size=real.shape)
    d_blur = spectrum_distance(torch.from_numpy(real), torch.from_numpy(blurred))
    d_noise = spectrum_distance(torch.from_numpy(real), torch.from_numpy(noisy))
    assert d_blur["spectrum"] > 0.1 and d_blur["spectrum_hf_ratio"] < 0.5
    assert d_noise["spectrum"] > 0.1 and d_noise["spectrum_hf_ratio"] > 1.5
    # a different draw from the same distribution is much closer than either
    other = rand_images(16, 1, 28, 28, seed=11, smooth=1.0) * 0.6 + 0.2
    d_other = spectrum_distance(torch.from_numpy(real), torch.from_numpy(other))
    assert d_other["spectrum"] < min(d_blur["spectrum"], d_noise["spectrum"])
    assert 0.8 < d_other["spectrum_hf_ratio"] < 1.25


# ----------------------------------------------------------------------------------------- Parzen


def parzen_reference(samples: np.ndarray, x: np.ndarray, sigma: float) -> np.ndarray:
    s, q = samples.reshape(len(samples), -1), x.reshape(len(x), -1)
    d = s.shape[1]
    sq = ((q[:, None, :] - s[None, :, :]) ** 2).sum(-1)
    return (
        scipy.special.logsumexp(-sq / (2 * sigma**2), axis=1)
        - math.log(len(s))
        - d / 2 * math.log(2 * math.pi * sigma**2)
    )


def test_parzen_matches_logsumexp_reference() -> None:
    rng = np.random.default_rng(12)
    samples = rng.uniform(size=(50, 1, 2, 3))
    test = rng.uniform(size=(30, 1, 2, 3))
    ref = parzen_reference(samples, test, 0.3)
    out = parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), sigma=0.3, batch=7)
    assert out["parzen_ll"] == pytest.approx(ref.mean(), rel=1e-12)
    assert out["parzen_se"] == pytest.approx(ref.std(ddof=1) / math.sqrt(len(ref)), rel=1e-10)
    assert out["parzen_sigma"] == 0.3 and out["n_test"] == 30 and math.isnan(out["parzen_valid_ll"])
    # far-away points: no underflow to -inf thanks to logsumexp
    far = parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test + 5.0), sigma=0.05, batch=4)
    assert far["parzen_ll"] == pytest.approx(parzen_reference(samples, test + 5.0, 0.05).mean(), rel=1e-12)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_parzen_single_point_is_gaussian(sigma: float) -> None:
    x = np.array([-1.0, -0.3, 0.0, 0.4, 2.5])
    out = parzen_log_density(torch.zeros(1, 1), torch.from_numpy(x)[:, None], [sigma])
    np.testing.assert_allclose(out[0].numpy(), scipy.stats.norm.logpdf(x, scale=sigma), rtol=1e-13)


def test_parzen_sigma_selection_picks_the_best_grid_value() -> None:
    rng = np.random.default_rng(13)
    centres = rng.uniform(size=(4, 8))
    fake = centres[rng.integers(4, size=200)] + rng.normal(scale=0.15, size=(200, 8))
    valid = centres[rng.integers(4, size=60)] + rng.normal(scale=0.15, size=(60, 8))
    test = centres[rng.integers(4, size=40)] + rng.normal(scale=0.15, size=(40, 8))
    grid = tuple(np.logspace(-1.5, 0.5, 9))
    val_means = [parzen_reference(fake, valid, s).mean() for s in grid]
    best = int(np.argmax(val_means))
    assert 0 < best < len(grid) - 1  # an interior optimum, so the choice is meaningful
    out = parzen_log_likelihood(
        torch.from_numpy(fake), torch.from_numpy(test), sigmas=grid, valid=torch.from_numpy(valid)
    )
    assert out["parzen_sigma"] == pytest.approx(grid[best], rel=1e-15)
    assert out["parzen_valid_ll"] == pytest.approx(val_means[best], rel=1e-12)
    assert out["parzen_ll"] == pytest.approx(parzen_reference(fake, test, grid[best]).mean(), rel=1e-12)
    assert out["n_valid"] == 60 and out["n_test"] == 40
    # without ``valid``: a seeded 20 % of test is held out for the choice, the rest is scored
    split = parzen_log_likelihood(torch.from_numpy(fake), torch.from_numpy(test), sigmas=grid)
    assert split["n_valid"] == 8 and split["n_test"] == 32 and split["parzen_sigma"] in grid
    assert split == parzen_log_likelihood(torch.from_numpy(fake), torch.from_numpy(test), sigmas=grid)
