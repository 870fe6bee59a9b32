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
