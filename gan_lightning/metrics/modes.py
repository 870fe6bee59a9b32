"""Mode statistics of 2-D mixtures (the protocol of VEEGAN, Srivastava et al. 2017, and PacGAN,
Lin et al. 2018): a sample is high quality within ``threshold`` std of its nearest mode; a mode
is covered when it is the nearest mode of at least one high-quality sample; KL is that of the
histogram of high-quality samples over modes to the uniform distribution."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mode_statistics(samples: Tensor, centres: Tensor, std: float, threshold: float = 3.0) -> dict[str, float]:
    samples, centres = samples.double().cpu(), centres.double().cpu()
    dist = torch.cdist(samples, centres)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= threshold * std
    counts = torch.bincount(nearest[hq], minlength=len(centres)).double()
    total = counts.sum().item()
    if total > 0:
        p = counts / total
        nz = p > 0
        kl = float((p[nz] * (p[nz] * len(centres)).log()).sum())
    else:
        kl = math.inf
    return {
        "covered": float((counts > 0).sum().item()),
        "high_quality": float(hq.double().mean().item()) if len(samples) else 0.0,
        "kl": kl,
    }


def class_statistics(probs: Tensor, data_hist: Tensor, min_share: float = 0.1) -> dict[str, float]:
    """Class-mode statistics from a classifier's probabilities on generated samples: a class is
    covered when it is predicted for at least ``min_share`` of a uniform share (N / C); KL is that
    of the predicted-class histogram to the data's class histogram."""
    probs = probs.double().cpu()
    n, c = probs.shape
    counts = torch.bincount(probs.argmax(1), minlength=c).double()
    p = counts / n
    q = data_hist.double().cpu() / data_hist.double().sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] / q[nz]).log()).sum()) if bool((q[nz] > 0).all()) else math.inf
    return {"covered": float((counts >= min_share * n / c).sum()), "kl": kl}


def inception_score(probs: Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split; mean and std over splits (Salimans et al. 2016: split k holds
    rows [k N / s, (k + 1) N / s), so the splits differ in size by one row at most)."""
    probs = probs.double().cpu()
    n = len(probs)
    splits = max(1, min(splits, n))  # fewer images than splits: one image per split
    scores = []
    for k in range(splits):
        part = probs[k * n // splits : (k + 1) * n // splits]
        py = part.mean(0, keepdim=True)
        kl = (part * (part.clamp_min(1e-30).log() - py.clamp_min(1e-30).log())).sum(1).mean()
        scores.append(float(kl.exp()))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(scores) > 1 else 0.0


def stacked_mode_statistics(channel_probs: Tensor, class_hist: Tensor) -> dict[str, float]:
    """Modes (class triples) among the samples, each channel read by the base classifier: how
    many of the 1,000 appear at least once, and KL(generated mode histogram || data's), the data's
    being the product of the base class frequencies (Srivastava et al. 2017; Lin et al. 2018)."""
    pred = channel_probs.argmax(2)  # (N, 3)
    modes = pred[:, 0] * 100 + pred[:, 1] * 10 + pred[:, 2]
    counts = torch.bincount(modes, minlength=1000).double()
    p = counts / counts.sum()
    q1 = class_hist.double() / class_hist.double().sum()
    q = (q1[:, None, None] * q1[None, :, None] * q1[None, None, :]).flatten()
    nz = p > 0
    return {"modes": float(nz.sum()), "kl": float((p[nz] * (p[nz] / q[nz]).log()).sum())}
