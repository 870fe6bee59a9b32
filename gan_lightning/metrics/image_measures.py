"""Pixel-space measures of images: PSNR, SSIM, the radial power spectrum and a Parzen-window log-likelihood.

Images are tensors (N, C, H, W) with values in [0, data_range] (default [0, 1]); every computation is done
in float64 on the CPU and results are Python floats (or float64 tensors for the spectra).

- ``psnr``: the mean over images of 10 log10(L^2 / MSE_i).
- ``ssim``: structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004, "Image quality assessment:
  from error visibility to structural similarity"), with the paper's 11x11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03 and 'valid' borders.
- ``mean_power_spectrum``, ``radial_profile``, ``spectrum_distance``: the azimuthally averaged power
  spectrum, the 1-D summary of the spectrum that Durall, Keuper and Keuper 2020 ("Watch your
  up-convolution: CNN based generative deep neural networks are failing to reproduce spectral
  distributions") use to show that up-sampling generators get the high frequencies wrong.
- ``parzen_log_likelihood``: the Gaussian Parzen-window estimate of test log-likelihood used by Breuleux,
  Bengio and Vincent 2011 and Goodfellow et al. 2014, with its well-known flaws (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gaussian_window",
    "mean_power_spectrum",
    "parzen_log_density",
    "parzen_log_likelihood",
    "psnr",
    "psnr_per_image",
    "radial_profile",
    "spectrum_distance",
    "ssim",
    "ssim_per_image",
]

DEFAULT_SIGMAS: tuple[float, ...] = tuple(float(s) for s in np.logspace(-1, 0, 10))
"""The Parzen bandwidth grid for pixels in [0, 1]: 10 values log-spaced from 0.1 to 1."""


def _images(x: Tensor | np.ndarray, name: str = "images") -> Tensor:
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if t.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return t


def _pair(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    a, b = _images(x, "x"), _images(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


# --------------------------------------------------------------------------------------------- PSNR


def psnr_per_image(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """(N,) float64 PSNRs in dB, 10 log10(data_range^2 / MSE_i), the MSE over each image's C*H*W values;
    ``inf`` where the two images are identical (MSE 0)."""
    a, b = _pair(x, y)
    mse = (a - b).square().flatten(1).mean(1)
    return 10.0 * torch.log10(float(data_range) ** 2 / mse)  # L^2 / 0 = inf, no warning in torch


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: the mean of the per-image PSNRs 10 log10(data_range^2 / MSE_i)
    (not the PSNR of the pooled MSE). An identical pair of images has PSNR ``inf`` (no floor on the MSE),
    so the mean is ``inf`` as soon as one pair is identical."""
    return float(psnr_per_image(x, y, data_range).mean())


# --------------------------------------------------------------------------------------------- SSIM


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """(size,) float64 normalised 1-D Gaussian, centred on the middle tap; its outer product with itself is
    the normalised 2-D Gaussian window of Wang et al. 2004 (11 x 11, sigma 1.5)."""
    if size < 1:
        raise ValueError(f"window size must be positive, got {size}")
    k = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(k**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(t: Tensor, g: Tensor) -> Tensor:
    """Separable 'valid' filtering (correlation; the window is symmetric) of every (H, W) plane of t (B, H, W)."""
    w = g.numel()
    out = F.conv2d(t.unsqueeze(1), g.view(1, 1, 1, w))  # along W
    out = F.conv2d(out, g.view(1, 1, w, 1))  # along H
    return out.squeeze(1)


def ssim_per_image(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    batch: int = 256,
) -> Tensor:
    """(N,) float64 SSIMs: each image's SSIM map averaged over its channels and 'valid' positions.

    With the window w (normalised, sum 1) and the filtered statistics mu_x = w*x, mu_y = w*y,
    s_x = w*(x^2) - mu_x^2, s_y = w*(y^2) - mu_y^2, s_xy = w*(xy) - mu_x mu_y (window-weighted moments,
    no N/(N-1) correction, as in Wang's reference implementation),
      SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x + s_y + C2)),
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = data_range. Only positions where the window lies wholly inside the image
    are kept (no padding; a 28x28 image gives an 18x18 map with the 11x11 window). Channels are treated
    independently. There is no down-sampling of large images (the reference code's 2009 revision
    down-samples images over 256 pixels; that is not done here)."""
    a, b = _pair(x, y)
    n, c, h, wd = a.shape
    if h < win_size or wd < win_size:
        raise ValueError(f"images of {h}x{wd} are smaller than the {win_size}x{win_size} SSIM window")
    g = gaussian_window(win_size, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    out = []
    for start in range(0, n, batch):
        pa = a[start : start + batch].flatten(0, 1)  # (B*C, H, W)
        pb = b[start : start + batch].flatten(0, 1)
        m = len(pa)
        stats = _filter_valid(torch.cat([pa, pb, pa * pa, pb * pb, pa * pb]), g)
        mu_a, mu_b, e_aa, e_bb, e_ab = stats.split(m)
        s_a = e_aa - mu_a**2
        s_b = e_bb - mu_b**2
        s_ab = e_ab - mu_a * mu_b
        smap = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_a + s_b + c2))
        out.append(smap.reshape(-1, c * smap.shape[-2] * smap.shape[-1]).mean(1))
    return torch.cat(out)


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    batch: int = 256,
) -> float:
    """Mean structural similarity over images (Wang et al. 2004); see ``ssim_per_image`` for the definition.
    Defaults are the paper's: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03. Symmetric in x, y;
    1 for identical images."""
    return float(ssim_per_image(x, y, data_range, win_size, sigma, k1, k2, batch).mean())


# ------------------------------------------------------------------------------------ power spectrum


def mean_power_spectrum(images: Tensor, batch: int = 1024) -> Tensor:
    """(H, W) float64 power spectrum |FFT2(g)|^2 of each image's grayscale g (the mean over channels),
    averaged over images and ``fftshift``-ed so that the zero frequency sits at (H // 2, W // 2).

    Nothing is subtracted first (no mean removal, no window): the DC term (H W mean(g))^2 stays at the centre.
    The FFT is unnormalised, so Parseval reads sum(|F|^2) = H W sum(g^2) per image."""
    t = _images(images)
    total = torch.zeros(t.shape[-2:], dtype=torch.float64)
    for start in range(0, len(t), batch):
        gray = t[start : start + batch].mean(1)
        total += torch.fft.fft2(gray).abs().square().sum(0)
    return torch.fft.fftshift(total / len(t))


def radial_profile(power: Tensor) -> Tensor:
    """Azimuthal average of a centred (``fftshift``-ed) 2-D spectrum: entry r is the mean of the power over
    the pixels whose distance from the centre (H // 2, W // 2), rounded to the nearest integer, is r, for
    r = 0 .. min(H, W) // 2 (the corners beyond the inscribed circle, sampled only along diagonals, are left
    out). Returns a float64 tensor of length min(H, W) // 2 + 1."""
    p = torch.as_tensor(power, dtype=torch.float64)
    h, w = p.shape
    yy = torch.arange(h, dtype=torch.float64)[:, None] - h // 2
    xx = torch.arange(w, dtype=torch.float64)[None, :] - w // 2
    r = torch.sqrt(yy**2 + xx**2).round().long().flatten()
    r_max = min(h, w) // 2
    keep = r <= r_max
    sums = torch.bincount(r[keep], weights=p.flatten()[keep], minlength=r_max + 1)
    counts = torch.bincount(r[keep], minlength=r_max + 1).to(torch.float64)
    return sums / counts


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def spectrum_distance(real: Tensor, fake: Tensor, floor: float = 1e-30) -> dict[str, float]:
    """Compare the radial power spectra (``radial_profile`` of ``mean_power_spectrum``) of two image sets of
    the same H x W (the numbers of images may differ):

    - ``spectrum``: mean over radii r = 0 .. min(H, W) // 2 of |log10 P_fake(r) - log10 P_real(r)| (profiles
      floored at ``floor`` before the log); 0 for identical sets.
    - ``spectrum_hf_ratio``: sum of P_fake(r) / sum of P_real(r) over the upper half of radii, r > R / 2 with
      R = min(H, W) // 2: below 1 when the fakes lack high frequencies (blur), above 1 when they have too much
      (noise, checkerboard artefacts); ``inf`` (or ``nan``) when the real high-frequency power is 0.

    The azimuthally averaged power spectrum as a summary of a generator's spectral behaviour follows
    Durall et al. 2020; the two numbers above are this module's own choices."""
    pr = radial_profile(mean_power_spectrum(real))
    pf = radial_profile(mean_power_spectrum(fake))
    if pr.shape != pf.shape:
        raise ValueError("real and fake images must have the same height and width")
    dist = (pf.clamp_min(floor).log10() - pr.clamp_min(floor).log10()).abs().mean()
    radii = torch.arange(len(pr), dtype=torch.float64)
    hf = radii > (len(pr) - 1) / 2
    return {"spectrum": float(dist), "spectrum_hf_ratio": _ratio(float(pf[hf].sum()), float(pr[hf].sum()))}


# ------------------------------------------------------------------------------------------- Parzen


def _flat(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    return t.reshape(len(t), -1) if t.ndim != 1 else t.reshape(-1, 1)


def parzen_log_density(samples: Tensor, x: Tensor, sigmas: Sequence[float], batch: int = 1024) -> Tensor:
    """(len(sigmas), len(x)) float64 log-densities of the rows of x (flattened) under the isotropic Gaussian
    kernel density estimate on the rows of ``samples``, one row per bandwidth:
      log p(x) = logsumexp_i(-|x - s_i|^2 / (2 sigma^2)) - log M - (d / 2) log(2 pi sigma^2).
    Squared distances (|x|^2 + |s|^2 - 2 x.s, float64, clamped at 0) are taken in ``batch`` x ``batch`` blocks
    and the logsumexp is accumulated across blocks, so memory stays O(batch^2 + len(sigmas) len(x))."""
    s, q = _flat(samples), _flat(x)
    if s.shape[1] != q.shape[1]:
        raise ValueError(f"samples have {s.shape[1]} dimensions, the evaluated points {q.shape[1]}")
    if len(s) == 0 or len(q) == 0:
        raise ValueError("need at least one sample and one point")
    sig = torch.as_tensor(list(sigmas), dtype=torch.float64)
    if bool((sig <= 0).any()):
        raise ValueError("bandwidths must be positive")
    m, d = s.shape
    scale = (-0.5 / sig**2).view(-1, 1, 1)  # (S, 1, 1)
    s_sq = s.square().sum(1)
    out = torch.empty(len(sig), len(q), dtype=torch.float64)
    for qs in range(0, len(q), batch):
        qb = q[qs : qs + batch]
        qb_sq = qb.square().sum(1)
        acc = torch.full((len(sig), len(qb)), -math.inf, dtype=torch.float64)
        for ss in range(0, m, batch):
            dist = (qb_sq[:, None] + s_sq[None, ss : ss + batch] - 2 * qb @ s[ss : ss + batch].T).clamp_min(0)
            acc = torch.logaddexp(acc, torch.logsumexp(scale * dist, dim=2))
        out[:, qs : qs + batch] = acc
    return out - math.log(m) - 0.5 * d * torch.log(2 * math.pi * sig**2)[:, None]


def _mean_se(ll: Tensor) -> tuple[float, float]:
    se = float(ll.std(unbiased=True) / math.sqrt(len(ll))) if len(ll) > 1 else math.nan
    return float(ll.mean()), se


def parzen_log_likelihood(
    samples: Tensor,
    test: Tensor,
    sigma: float | None = None,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    valid: Tensor | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    batch: int = 1024,
) -> dict[str, float]:
    """Gaussian Parzen-window estimate of the test log-likelihood (Breuleux et al. 2011; Goodfellow et al. 2014).

    An isotropic Gaussian kernel density estimate with bandwidth sigma is placed on the flattened generated
    ``samples`` (M of them); each real ``test`` image x gets log p(x) (nats, see ``parzen_log_density``).
    When ``sigma`` is None it is chosen from the grid ``sigmas`` (default: 10 values log-spaced in [0.1, 1], for
    pixels in [0, 1]) by the largest mean log-likelihood of a validation set of real data: ``valid`` when given,
    otherwise a random ``valid_fraction`` of ``test`` (permutation seeded by ``seed``), which is then held out
    of the test mean. Ties go to the earlier grid value.

    Returns ``parzen_ll`` (mean test log-likelihood, nats per example), ``parzen_se`` (its standard error,
    sample std with ddof 1 over sqrt(n); nan for one test example), ``parzen_sigma`` (the bandwidth used),
    ``parzen_valid_ll`` (the validation mean at that sigma; nan when sigma was given), and ``n_test``,
    ``n_valid``.

    Known flaws (Theis, van den Oord and Bethge 2016, "A note on the evaluation of generative models"): in high
    dimensions (784 pixels and up) the estimate is far from the model's true log-likelihood even with very many
    samples, and converges extremely slowly; it can rank a model above the true data distribution, e.g. one
    that memorises (copies training images) or a k-means mixture of few centroids; and the number moves
    strongly with sigma and with M. Treat it as a historical, comparable-only-under-identical-protocol score,
    not as a likelihood."""
    test_t = _flat(test)
    sig_grid = [float(sigma)] if sigma is not None else [float(s) for s in sigmas]
    if not sig_grid:
        raise ValueError("empty bandwidth grid")
    valid_ll = math.nan
    n_valid = 0
    if sigma is None:
        if valid is None:
            if not 0 < valid_fraction < 1:
                raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
            n_valid = round(valid_fraction * len(test_t))
            if n_valid < 1 or n_valid >= len(test_t):
                raise ValueError(f"cannot split {len(test_t)} test examples into validation and test")
            perm = torch.randperm(len(test_t), generator=torch.Generator().manual_seed(seed))
            valid_t, test_t = test_t[perm[:n_valid]], test_t[perm[n_valid:]]
        else:
            valid_t = _flat(valid)
            n_valid = len(valid_t)
        means = parzen_log_density(samples, valid_t, sig_grid, batch).mean(1)
        best = int(torch.argmax(means))  # first maximum: the earlier grid value on ties
        sig_grid, valid_ll = [sig_grid[best]], float(means[best])
    ll, se = _mean_se(parzen_log_density(samples, test_t, sig_grid, batch)[0])
    return {
        "parzen_ll": ll,
        "parzen_se": se,
        "parzen_sigma": sig_grid[0],
        "parzen_valid_ll": valid_ll,
        "n_test": float(len(test_t)),
        "n_valid": float(n_valid),
    }
