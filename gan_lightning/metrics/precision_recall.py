"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

With real features X (N) and generated features Y (M), r_k(x) the distance from x to its k-th
nearest neighbour in its own set (itself excluded), and B(x, r) the closed ball:
  precision = 1/M  sum_j 1[exists i: Y_j in B(X_i, r_k(X_i))]
  recall    = 1/N  sum_i 1[exists j: X_i in B(Y_j, r_k(Y_j))]
  density   = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, r_k(X_i))]
  coverage  = 1/N  sum_i 1[exists j: Y_j in B(X_i, r_k(X_i))]
The papers use k = 3 for precision/recall and k = 5 for density/coverage. Distances are exact
(no matrix-product shortcut) and taken in chunks, so 10k x 10k sets fit in memory.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def kth_neighbour_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples, got {x.shape[0]}")
    out = []
    for start in range(0, x.shape[0], chunk):
        d = _pairwise(x[start : start + chunk], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # exclude the point itself
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out)


def _in_balls(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(len(points), ) counts of balls B(centre_i, radius_i) containing each point, and the
    (len(centres), ) indicator of balls containing at least one point."""
    counts = torch.zeros(points.shape[0], dtype=torch.long)
    hit = torch.zeros(centres.shape[0], dtype=torch.bool)
    for start in range(0, points.shape[0], chunk):
        inside = _pairwise(points[start : start + chunk], centres) <= radii[None, :]
        counts[start : start + chunk] = inside.sum(1)
        hit |= inside.any(0)
    return counts, hit


def prdc(
    real: Tensor, fake: Tensor, k: int | None = None, k_pr: int = 3, k_dc: int = 5, dtype: torch.dtype = torch.float64
) -> dict[str, float]:
    """Precision, recall (k_pr) and density, coverage (k_dc) of ``fake`` against ``real``;
    ``k`` sets both."""
    if k is not None:
        k_pr = k_dc = k
    x = torch.as_tensor(real).to(dtype).cpu().flatten(1)
    y = torch.as_tensor(fake).to(dtype).cpu().flatten(1)
    out: dict[str, float] = {}
    r_x = kth_neighbour_radii(x, k_pr)
    r_y = kth_neighbour_radii(y, k_pr)
    counts, _ = _in_balls(y, x, r_x)
    out["precision"] = float((counts > 0).double().mean())
    counts_r, _ = _in_balls(x, y, r_y)
    out["recall"] = float((counts_r > 0).double().mean())
    r_x5 = r_x if k_dc == k_pr else kth_neighbour_radii(x, k_dc)
    counts5, covered = _in_balls(y, x, r_x5)
    out["density"] = float(counts5.double().sum() / (k_dc * y.shape[0]))
    out["coverage"] = float(covered.double().mean())
    return out
