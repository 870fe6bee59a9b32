"""Nearest training neighbours in feature space, and a memorisation signal.

A generated sample is "closer than the data" when its distance to its nearest training image t
is smaller than t's distance to t's own nearest training neighbour. The share of such samples
is reported beside the same share for held-out real images, which is the value an
ideal generator (fresh draws from the data distribution) would have; a share well above that
baseline means the generator reproduces training images.

Distances come from ``metrics.distances``: the float64 matrix-product (BLAS) form screens every
pair and the candidates a rigorous rounding-error band leaves open are recomputed exactly, so
neighbours and distances equal those of exact distances on every pair (ties to the lowest index).
"""

from __future__ import annotations

from torch import Tensor

from gan_lightning.metrics import distances
from gan_lightning.metrics.precision_recall import kth_neighbour_radii


def nearest(queries: Tensor, keys: Tensor, k: int = 1, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(distances, indices) of the k nearest keys of each query (float64, CPU), nearest first, ties to
    the lowest key index."""
    return distances.nearest(queries.double().cpu().flatten(1), keys.double().cpu().flatten(1), k, chunk)


def closer_than_data_share(queries: Tensor, train: Tensor, train_radii: Tensor | None = None) -> float:
    """Share of queries nearer to their nearest training point t than t is to its own nearest
    other training point."""
    radii = train_radii if train_radii is not None else kth_neighbour_radii(train.double().cpu().flatten(1), 1)
    d, i = nearest(queries, train, k=1)
    return float((d[:, 0] < radii[i[:, 0]]).double().mean())
