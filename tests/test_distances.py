"""metrics.distances: BLAS screening plus exact recheck gives results identical (==) to exact distances
on every pair (the previous implementation, kept here as the reference), on random data and on data
built to sit on ties, near-ties and catastrophic cancellation of the BLAS form."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gan_lightning.metrics import distances
from gan_lightning.metrics.distances import (
    ball_counts,
    exact_dists,
    exact_pair_dists,
    kth_neighbour_radii,
    nearest,
    nearest_other,
    pairwise_distances,
    sq_dists_blas,
)
from gan_lightning.metrics.precision_recall import prdc

EXACT = "donot_use_mm_for_euclid_dist"


# ---- the previous exact implementation, the reference ----------------------------------------------


def old_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    out = []
    for start in range(0, x.shape[0], chunk):
        d = torch.cdist(x[start : start + chunk], x, compute_mode=EXACT)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out)


def old_in_balls(points: Tensor, centres: Tensor, radii: Tensor) -> tuple[Tensor, Tensor]:
    inside = torch.cdist(points, centres, compute_mode=EXACT) <= radii[None, :]
    return inside.sum(1), inside.any(0)


def old_prdc(x: Tensor, y: Tensor, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    r_x, r_y, r_x5 = old_radii(x, k_pr), old_radii(y, k_pr), old_radii(x, k_dc)
    counts, _ = old_in_balls(y, x, r_x)
    counts_r, _ = old_in_balls(x, y, r_y)
    counts5, covered = old_in_balls(y, x, r_x5)
    return {
        "precision": float((counts > 0).double().mean()),
        "recall": float((counts_r > 0).double().mean()),
        "density": float(counts5.double().sum() / (k_dc * y.shape[0])),
        "coverage": float(covered.double().mean()),
    }


def ref_nearest(q: Tensor, keys: Tensor, k: int, leave_one_out: bool = False) -> tuple[Tensor, Tensor]:
    """Exact distances, nearest first, ties to the lowest index (a stable full sort)."""
    d = torch.cdist(q, keys, compute_mode=EXACT)
    if leave_one_out:
        d.fill_diagonal_(float("inf"))
    v, i = d.sort(dim=1, stable=True)
    return v[:, :k], i[:, :k]


# ---- data ---------------------------------------------------------------------------------------


def make(kind: str, n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randn(n, 24, generator=g, dtype=torch.float64) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    if kind == "lattice":  # integer points, many duplicates: exact ties at every radius
        return torch.randint(0, 4, (n, 4), generator=g).double()
    if kind == "lattice_scaled":  # 0.1 is inexact: ties become last-bit near-ties, set by rounding
        return torch.randint(0, 5, (n, 6), generator=g).double() * 0.1 + 0.7
    if kind == "offset":  # 1e6 + noise: the raw BLAS form cancels catastrophically (centring rescues it)
        return 1e6 + 1e-3 * torch.randn(n, 16, generator=g, dtype=torch.float64)
    if kind == "two_clusters":  # +-1e6 + noise: centring cannot help, the band opens whole clusters
        x = 1e-3 * torch.randn(n, 16, generator=g, dtype=torch.float64)
        x[: n // 2] += 1e6
        x[n // 2 :] -= 1e6
        return x
    raise ValueError(kind)


KINDS = ["random", "lattice", "lattice_scaled", "offset", "two_clusters"]


@pytest.mark.parametrize("kind", KINDS)
def test_radii_equal_the_exact_path(kind: str) -> None:
    x = make(kind, 240, 0)
    for k in (1, 3, 5):
        assert torch.equal(kth_neighbour_radii(x, k, chunk=37), old_radii(x, k)), k


@pytest.mark.parametrize("kind", KINDS)
def test_ball_counts_equal_the_exact_path(kind: str) -> None:
    points, centres = make(kind, 200, 1), make(kind, 170, 2)
    radii = old_radii(centres, 3)
    # the radii themselves, and one ulp either side: membership is decided on the last bit
    for r in (radii, torch.nextafter(radii, torch.tensor(0.0).double()), torch.nextafter(radii, radii + 1)):
        counts, hit = ball_counts(points, centres, r, chunk=29)
        ref_counts, ref_hit = old_in_balls(points, centres, r)
        assert torch.equal(counts, ref_counts) and torch.equal(hit, ref_hit)
    both = ball_counts(points, centres, torch.stack([radii, radii * 0.5]))
    assert torch.equal(both[0][1], old_in_balls(points, centres, radii * 0.5)[0])
    if kind.startswith("lattice"):  # the data is adversarial: points sit exactly on the spheres
        assert (exact_dists(points, centres) == radii[None, :]).sum() > 50


@pytest.mark.parametrize("kind", KINDS)
def test_prdc_equals_the_exact_path(kind: str) -> None:
    real, fake = make(kind, 150, 3), make(kind, 130, 4)
    assert prdc(real, fake) == old_prdc(real, fake)
    assert prdc(real, fake, k=4) == old_prdc(real, fake, 4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_nearest_equals_the_exact_path(kind: str) -> None:
    q, keys = make(kind, 120, 5), make(kind, 260, 6)
    d, i = nearest(q, keys, k=4, chunk=50)
    ref_d, ref_i = ref_nearest(q, keys, 4)
    assert torch.equal(d, ref_d) and torch.equal(i, ref_i)
    old_d, old_i = torch.cdist(q, keys, compute_mode=EXACT).topk(4, dim=1, largest=False)
    assert torch.equal(d, old_d)  # values always; indices where there are no ties
    if kind == "random":
        assert torch.equal(i, old_i)
    d, i = nearest_other(keys, k=3, chunk=64)
    ref_d, ref_i = ref_nearest(keys, keys, 3, leave_one_out=True)
    assert torch.equal(d, ref_d) and torch.equal(i, ref_i)


@pytest.mark.parametrize("kind", ["offset", "two_clusters", "lattice_scaled"])
def test_the_raw_blas_form_would_disagree(kind: str) -> None:
    x, y = make(kind, 200, 7), make(kind, 200, 8)
    blas = sq_dists_blas(x, x).sqrt()
    blas.fill_diagonal_(float("inf"))
    blas_radii = blas.kthvalue(3, dim=1).values
    exact = old_radii(x, 3)
    blas_counts = (sq_dists_blas(y, x).sqrt() <= exact[None, :]).sum(1)
    assert not torch.equal(blas_radii, exact) or not torch.equal(blas_counts, old_in_balls(y, x, exact)[0])
    assert torch.equal(kth_neighbour_radii(x, 3), exact)
    assert torch.equal(ball_counts(y, x, exact)[0], old_in_balls(y, x, exact)[0])


def test_both_recheck_routes_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {"pairs": 0, "blocks": 0}
    pair_fn, block_fn = distances.exact_pair_dists, distances.exact_dists

    def pairs(*args):
        seen["pairs"] += 1
        return pair_fn(*args)

    def blocks(a, b):
        seen["blocks"] += a.dim() == 2  # the pair route calls it batched, one pair per entry
        return block_fn(a, b)

    monkeypatch.setattr(distances, "exact_pair_dists", pairs)
    monkeypatch.setattr(distances, "exact_dists", blocks)
    kth_neighbour_radii(make("random", 200, 9), 3)
    assert seen == {"pairs": 1, "blocks": 0}  # a few candidates per row, recomputed pair by pair
    kth_neighbour_radii(make("two_clusters", 200, 9), 3)
    assert seen["blocks"] == 1  # the band opens half the block: recomputed whole


@pytest.mark.parametrize("dim", [1, 5, 33, 300])
def test_pair_recompute_is_bitwise_the_exact_matrix(dim: int) -> None:
    g = torch.Generator().manual_seed(dim)
    a = torch.randn(40, dim, generator=g, dtype=torch.float64) * 3 + 1
    b = torch.randn(55, dim, generator=g, dtype=torch.float64)
    rows, cols = torch.randint(0, 40, (500,), generator=g), torch.randint(0, 55, (500,), generator=g)
    assert torch.equal(exact_pair_dists(a, b, rows, cols), exact_dists(a, b)[rows, cols])
    a32, b32 = a.float(), b.float()
    assert torch.equal(exact_pair_dists(a32, b32, rows, cols), exact_dists(a32, b32)[rows, cols])


def test_float32_input_keeps_the_float32_exact_path() -> None:
    for kind in ("random", "lattice_scaled"):
        x = make(kind, 200, 10).float()
        r = kth_neighbour_radii(x, 3)
        assert r.dtype == torch.float32 and torch.equal(r, old_radii(x, 3))
        assert torch.equal(ball_counts(x[:50], x, r)[0], old_in_balls(x[:50], x, r)[0])


def test_non_finite_input_takes_the_exact_path() -> None:
    x = make("random", 60, 11)
    x[7, 3] = float("nan")
    assert torch.equal(kth_neighbour_radii(x, 2).isnan(), old_radii(x, 2).isnan())
    ok = ~old_radii(x, 2).isnan()
    assert torch.equal(kth_neighbour_radii(x, 2)[ok], old_radii(x, 2)[ok])


def test_pairwise_distances_is_the_accurate_blas_form() -> None:
    a, b = make("offset", 50, 12), make("offset", 60, 13)
    torch.testing.assert_close(pairwise_distances(a, b), exact_dists(a, b), rtol=1e-9, atol=0)
    assert pairwise_distances(a, b).dtype == torch.float64


def test_bad_k() -> None:
    x = make("random", 5, 14)
    with pytest.raises(ValueError, match="need more than"):
        kth_neighbour_radii(x, 5)
    with pytest.raises(ValueError):
        nearest(x, x, k=6)
    assert nearest(x[:0], x, k=2)[0].shape == (0, 2)


def test_the_prdc_metric_reads_a_seeded_subset_of_the_reference_not_its_prefix() -> None:
    """A reference stored in dataset order (class-sorted folders): its first n rows are one class. Generated
    samples from both classes are then half off the prefix's manifold; on a seeded subset precision is ~1."""
    from types import SimpleNamespace

    from gan_lightning.metrics.evaluator import METRICS

    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g) + 20])  # class-sorted
    fake = torch.randn(200, 4, generator=g) + 20 * (torch.arange(200) % 2)[:, None]  # both classes, i.i.d.
    ctx = SimpleNamespace(reference=SimpleNamespace(feats=real), prdc_n=200)
    values = METRICS.get("prdc", "metrics.names").fn(ctx, {"feats": fake})
    assert values["precision"] > 0.9 and values["recall"] > 0.9
