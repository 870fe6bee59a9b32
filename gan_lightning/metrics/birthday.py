"""The birthday paradox test of support size (Arora & Zhang 2017, "Do GANs learn the distribution?").

If a distribution has support of M equally likely points, a batch of s samples holds a
duplicate with probability 1 - prod_{i<s}(1 - i/M) ~ 1 - exp(-s^2 / 2M), which reaches 1/2 at
s ~ sqrt(2 M ln 2) ~ 1.1774 sqrt(M). Arora & Zhang read it backwards: when batches of size s
hold (near-)duplicates with probability >= 1/2, the support is about s^2.

Here a duplicate is a pair of generated samples whose Euclidean distance (in features, or
pixels) is at most a threshold. By default the threshold is ``duplicate_threshold(real, q)``:
the q-quantile of the nearest-neighbour distances among n real samples. Why q = 0.001: the
share q of real samples with a neighbour that close means two independent real samples fall
that close with probability pi ~ q / (n - 1), so real data itself would show duplicates w.p. 1/2
only at s ~ sqrt(2 ln 2 (n - 1) / q) (~3,700 for n = 10,000); with the default largest batch of
1,024 real data then gives P(dup) ~ s^2 q / (2 (n - 1)) ~ 5%, i.e. a batch flagged at 1/2 is
not explained by the ordinary closeness of real images. A larger q makes the test flag
ordinary neighbours; a smaller one needs more real samples for a stable quantile.

Batches are nested prefixes of one random permutation of the generated pool per trial: the
closest-pair distance of every prefix size s comes from one distance matrix of the largest
batch, so P(duplicate) is estimated at every s up to ``max_size`` from the same trials (each
prefix is a uniformly random subset of the pool, so each s's estimate is that of independent
batches; across s the estimates are correlated and P is nondecreasing in s). The pool should be
much larger than the largest batch, so that subsets behave like fresh draws from the generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gan_lightning.files import save_figure
from gan_lightning.metrics.distances import distances_decided_at
from gan_lightning.metrics.precision_recall import kth_neighbour_radii


def _features(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(x).detach().double().cpu()
    return t.reshape(t.shape[0], -1)


def duplicate_threshold(real_feats: Tensor | np.ndarray, q: float = 0.001) -> float:
    """The q-quantile (linear interpolation) of each real sample's distance to its nearest other
    real sample: the distance under which a pair of samples counts as a near-duplicate."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    radii = kth_neighbour_radii(_features(real_feats), 1)
    return float(torch.quantile(radii, q))


def birthday_test(
    fake: Tensor | np.ndarray,
    threshold: float | None = None,
    real: Tensor | np.ndarray | None = None,
    q: float = 0.001,
    max_size: int | None = None,
    sizes: Sequence[int] | None = None,
    trials: int = 100,
    seed: int = 0,
    n_pairs: int = 10,
) -> dict[str, object]:
    """Birthday paradox test on a pool of generated samples ``fake`` (N, ...).

    ``threshold``: pairs at distance <= threshold are duplicates; when None it is
    ``duplicate_threshold(real, q)``. ``max_size``: the largest batch (default min(N, 1024));
    ``sizes``: the batch sizes reported (default every s from 2 to max_size); ``trials``: random
    batches per size (default 100: P(dup) within about +-0.05 near 1/2).

    Returns ``birthday_s`` (the smallest reported s with P(dup) >= 1/2; ``inf`` when no size up
    to max_size reaches it, meaning the support is beyond what batches this size can measure),
    ``support`` (birthday_s^2, Arora & Zhang's estimate; inf likewise), ``support_uniform``
    (s (s - 1) / (2 ln 2), the M of a uniform support that reaches 1/2 at s), ``threshold``,
    ``sizes`` and ``p_duplicate`` (tensors), and the closest pairs met in any batch:
    ``pairs`` ((P, 2) indices into ``fake``, closest first) and ``pair_distances`` (P,).
    """
    x = _features(fake)
    n = len(x)
    if threshold is None:
        if real is None:
            raise ValueError("give a threshold, or real samples to compute it from")
        threshold = duplicate_threshold(real, q)
    s_max = min(n, 1024) if max_size is None else int(max_size)
    if not 2 <= s_max <= n:
        raise ValueError(f"need 2 <= max_size <= N, got max_size={s_max}, N={n}")
    grid = torch.arange(2, s_max + 1) if sizes is None else torch.as_tensor(list(sizes), dtype=torch.long)
    if len(grid) == 0 or int(grid.min()) < 2 or int(grid.max()) > s_max:
        raise ValueError(f"sizes must lie in [2, {s_max}]")
    gen = torch.Generator().manual_seed(seed)
    below_i_j = torch.ones(s_max, s_max, dtype=torch.bool).triu(1)  # entries (i, j) with i < j
    closest = torch.empty(trials, s_max, dtype=torch.float64)  # [t, s - 1]: closest pair of the first s
    found: dict[tuple[int, int], float] = {}
    for t in range(trials):
        idx = torch.randperm(n, generator=gen)[:s_max]
        d = distances_decided_at(x[idx], x[idx], threshold).masked_fill(~below_i_j, math.inf)
        closest[t] = d.min(0).values.cummin(0).values  # min over j < s of min_{i<j} d(i, j)
        k = min(n_pairs, s_max * (s_max - 1) // 2)
        if k:
            vals, flat = d.flatten().topk(k, largest=False)
            for v, f in zip(vals.tolist(), flat.tolist()):
                a, b = sorted((int(idx[f // s_max]), int(idx[f % s_max])))
                found[(a, b)] = v
    p_dup = (closest[:, grid - 1] <= threshold).double().mean(0)
    hit = torch.nonzero(p_dup >= 0.5).flatten()
    s = float(grid[hit[0]]) if len(hit) else math.inf
    best = sorted(found, key=lambda ab: found[ab])[:n_pairs]
    pairs = torch.tensor(best, dtype=torch.long).reshape(-1, 2)
    # exact distances of the reported pairs (the batch matrices may use the matrix-product form)
    pair_d = (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=1) if len(pairs) else torch.zeros(0, dtype=torch.float64)
    return {
        "birthday_s": s,
        "support": s * s,
        "support_uniform": s * (s - 1) / (2 * math.log(2)) if math.isfinite(s) else math.inf,
        "threshold": float(threshold),
        "sizes": grid,
        "p_duplicate": p_dup,
        "pairs": pairs,
        "pair_distances": pair_d,
    }


def _image(img: Tensor) -> tuple[np.ndarray, str | None]:
    """(H, W) or (H, W, 3) array in [0, 1] for imshow, and its colour map."""
    a = img.detach().double().cpu().clamp(0, 1)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.permute(1, 2, 0)
    return a.numpy(), ("gray" if a.ndim == 2 else None)


def save_duplicate_pairs(
    images01: Tensor | np.ndarray,
    pairs: Tensor | np.ndarray | Sequence[Sequence[int]],
    path: str | Path,
    distances: Tensor | np.ndarray | Sequence[float] | None = None,
    max_pairs: int = 10,
) -> Path:
    """A PNG of the first ``max_pairs`` pairs, one pair per column (the two images one above the
    other, the distance as title when given). ``images01``: (N, C, H, W) with C in {1, 3}, or
    (N, H, W), values in [0, 1], indexed as ``pairs``. Returns the path written."""
    from gan_lightning.plots import _figure

    imgs = torch.as_tensor(images01)
    pr = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)[:max_pairs]
    dist = None if distances is None else torch.as_tensor(distances, dtype=torch.float64).flatten()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(pr) == 0:
        fig, axes = _figure(1, 1, (3.0, 1.2))
        axes[0, 0].text(0.5, 0.5, "no near-duplicate pairs", ha="center", va="center")
        axes[0, 0].axis("off")
    else:
        fig, axes = _figure(2, len(pr), (1.5 * len(pr), 3.2))
        for col, (a, b) in enumerate(pr.tolist()):
            for row, i in enumerate((a, b)):
                ax = axes[row, col]
                arr, cmap = _image(imgs[i])
                ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(str(i), fontsize=7)
            if dist is not None and col < len(dist):
                axes[0, col].set_title(f"d={float(dist[col]):.3g}", fontsize=8)
        fig.suptitle("closest generated pairs", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return path
