"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

With real features X (N) and generated features Y (M), r_k(x) the distance from x to its k-th
nearest neighbour in its own set (itself excluded), and B(x, r) the closed ball:
  precision = 1/M  sum_j 1[exists i: Y_j in B(X_i, r_k(X_i))]
  recall    = 1/N  sum_i 1[exists j: X_i in B(Y_j, r_k(Y_j))]
  density   = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, r_k(X_i))]
  coverage  = 1/N  sum_i 1[exists j: Y_j in B(X_i, r_k(X_i))]
The papers use k = 3 for precision/recall and k = 5 for density/coverage. Distances come from
``metrics.distances``: every pair is screened by the float64 matrix-product (BLAS) form, and the
pairs a rigorous rounding-error band leaves undecided (near a k-th neighbour or a ball's radius) are
recomputed exactly, so the results equal those of exact distances on every pair; chunks keep
10k x 10k sets in memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_lightning.metrics.distances import ball_counts, kth_neighbour_radii, nearest_other

__all__ = ["kth_neighbour_radii", "prdc"]


def prdc(
    real: Tensor, fake: Tensor, k: int | None = None, k_pr: int = 3, k_dc: int = 5, dtype: torch.dtype = torch.float64
) -> dict[str, float]:
    """Precision, recall (k_pr) and density, coverage (k_dc) of ``fake`` against ``real``;
    ``k`` sets both."""
    if k is not None:
        k_pr = k_dc = k
    x = torch.as_tensor(real).to(dtype).cpu().flatten(1)
    y = torch.as_tensor(fake).to(dtype).cpu().flatten(1)
    for n, kk in ((x.shape[0], k_pr), (y.shape[0], k_pr), (x.shape[0], k_dc)):
        if n <= kk:  # as kth_neighbour_radii says it
            raise ValueError(f"need more than k={kk} samples, got {n}")
    k_max = max(k_pr, k_dc)
    d_x, _ = nearest_other(x, k_max)  # sorted: the k-th radius for every k <= k_max
    r_x, r_x5 = d_x[:, k_pr - 1], d_x[:, k_dc - 1]
    r_y = nearest_other(y, k_pr)[0][:, k_pr - 1]
    counts, covered = ball_counts(y, x, torch.stack([r_x, r_x5]))
    counts_r, _ = ball_counts(x, y, r_y)
    return {
        "precision": float((counts[0] > 0).double().mean()),
        "recall": float((counts_r > 0).double().mean()),
        "density": float(counts[1].double().sum() / (k_dc * y.shape[0])),
        "coverage": float(covered[1].double().mean()),
    }
