"""Pairwise Euclidean distances for every nearest-neighbour measure: the matrix-product (BLAS) form
for speed, with an exact recheck wherever rounding could change an answer.

The exact distance is ``torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")``: per pair,
the difference, its square-sum, the square root, in the inputs' dtype (``exact_dists``,
``exact_pair_dists``; the pair form calls the same kernel and gives bitwise the same numbers). It
costs about 16x the BLAS form ``||a||^2 + ||b||^2 - 2 a.b`` (float64, clamped at 0), whose rounding
error grows with the norms instead of the distance. So the neighbour queries here
(``nearest``, ``nearest_other``, ``kth_neighbour_radii``, ``ball_counts``) screen every pair with the
BLAS form on mean-centred float64 data, keep only the pairs whose answer a rigorous error band
(``_Screen``) leaves open, and recompute those exactly. Their results are identical to running the
exact definition on every pair; ties in ``nearest`` go to the lowest key index.

``pairwise_distances`` is the plain BLAS form (not rechecked), for kernel methods such as MMD.
Non-finite inputs, dtypes too coarse for a useful band, and sizes near overflow take the exact path.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EXACT_MODE = "donot_use_mm_for_euclid_dist"
_GATHER_ELEMENTS = 1 << 21  # rows x dim gathered per exact-recheck batch (16 MiB of float64)


def exact_dists(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) exact Euclidean distances: difference, square-sum, square root per pair."""
    return torch.cdist(a, b, compute_mode=_EXACT_MODE)


def exact_pair_dists(a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Exact ``||a[rows[t]] - b[cols[t]]||`` for each t, bitwise equal to ``exact_dists(a, b)[rows, cols]``
    (the same cdist kernel, one pair per batch entry)."""
    out = torch.empty(rows.shape[0], dtype=a.dtype, device=a.device)
    if rows.shape[0] == 0:
        return out
    step = max(1, _GATHER_ELEMENTS // max(1, a.shape[1]))
    # gathering into reused buffers avoids fresh page-faulting allocations, the main cost here
    buf_a = a.new_empty((min(step, rows.shape[0]), a.shape[1]))
    buf_b = b.new_empty((min(step, rows.shape[0]), b.shape[1]))
    for start in range(0, rows.shape[0], step):
        r, c = rows[start : start + step], cols[start : start + step]
        xa = torch.index_select(a, 0, r, out=buf_a[: r.shape[0]])
        xb = torch.index_select(b, 0, c, out=buf_b[: c.shape[0]])
        out[start : start + r.shape[0]] = exact_dists(xa.unsqueeze(1), xb.unsqueeze(1)).flatten()
    return out


def sq_dists_blas(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) squared distances by the matrix-product form ``||a||^2 + ||b||^2 - 2 a.b`` in
    float64, clamped at 0. Fast, but its error scales with ``(||a|| + ||b||)^2``, not the distance."""
    a64, b64 = a.double(), b.double()
    s = a64 @ b64.T
    s.mul_(-2).add_((a64 * a64).sum(1)[:, None]).add_((b64 * b64).sum(1)[None, :])
    return s.clamp_(min=0)


def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) float64 distances by the BLAS form on data centred at the mean of ``b`` (no
    exact recheck): absolute error about ``dim * eps * (||a - m|| + ||b - m||)^2`` in the squares.
    For kernel methods (MMD); neighbour ranks and ball tests should use the rechecked functions."""
    m = b.double().mean(0)
    return sq_dists_blas(a.double() - m, b.double() - m).sqrt_()


def _common_float(*xs: Tensor) -> list[Tensor]:
    dtype = xs[0].dtype
    for x in xs[1:]:
        dtype = torch.promote_types(dtype, x.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return [x.to(dtype) for x in xs]


class _Screen:
    """The BLAS squared distances of a chunk of queries to fixed keys, with a rigorous bound ``e`` on
    how far each lies from the exact path's squared distance.

    Error band. Let u be the unit roundoff of the inputs' dtype (2^-53 for float64; the BLAS side
    is always float64, so u bounds both sides), n the dimension, gamma_m = m u / (1 - m u), and
    a' = fl(a - mu), b' = fl(b - mu) the float64 centred rows, A = ||a'|| + ||b'||. For any
    summation order, with or without FMA (Higham, Accuracy and Stability, 3.1 and 3.5):
      * BLAS side: ||a'||^2 and ||b'||^2 are off by at most gamma_n of themselves and a'.b' by
        gamma_n ||a'|| ||b'||, and the two final additions round by at most u of terms bounded by
        A^2, so |s - ||a' - b'||^2| <= gamma_{n+2} A^2 (the clamp at 0 only moves s towards it).
      * Centring: componentwise a' = a - mu + d_a with |d_a| <= u |a - mu|, so
        | ||a' - b'|| - ||a - b|| | <= u A (1 + u) and the squares differ by at most 3 u A^2.
      * Exact side: fl(a - b) has relative error u and each square one more rounding, and the sum
        of n non-negative terms adds gamma_{n-1}: |s_exact - ||a - b||^2| <= gamma_{n+2} ||a - b||^2,
        and ||a - b|| <= A (1 + 2u).
    Hence |s - s_exact| <= (2 gamma_{n+2} + 3 u) A^2 (1 + O(u)). The band used is 4x that, which
    covers the O(u) slack, the computed norms (relative error gamma_n / 2 + u) and the rounding of
    the band arithmetic itself, plus an absolute term of (n + 4) smallest-normal numbers for
    underflow. For float64 data of dimension 2048 this is about 2e-12 A^2.
    """

    def __init__(self, keys: Tensor, queries: Tensor, extra_finite: Tensor | None = None):
        n = keys.shape[1]
        self.u = max(torch.finfo(keys.dtype).eps, torch.finfo(torch.float64).eps) / 2
        self.eta = 4.0 * (n + 4) * torch.finfo(keys.dtype).tiny
        m = (n + 2) * self.u
        finite = bool(torch.isfinite(keys).all()) and bool(torch.isfinite(queries).all())
        if extra_finite is not None:
            finite = finite and bool(torch.isfinite(extra_finite).all())
        self.finite = finite
        self.usable = finite and m < 0.01 and keys.shape[0] > 0
        if not self.usable:
            return
        self.coef = 4.0 * (2.0 * m / (1.0 - m) + 3.0 * self.u)
        k64 = keys.double()
        self.mu = k64.mean(0)
        self.k = k64 - self.mu
        self.k_sq = (self.k * self.k).sum(1)
        self.k_norm = self.k_sq.sqrt()
        # stay clear of overflow on either side (the exact side runs in the inputs' dtype)
        q_norm = float(torch.linalg.vector_norm(queries, dim=1, dtype=torch.float64).max()) if len(queries) else 0.0
        big = (float(self.k_norm.max()) + q_norm + float(self.mu.norm())) ** 2 * 4
        self.usable = big < torch.finfo(keys.dtype).max / 4

    def block(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """(s, e): BLAS squared distances of q's rows to the keys, and their error bounds."""
        q64 = q.double() - self.mu
        q_sq = (q64 * q64).sum(1)
        s = q64 @ self.k.T
        s.mul_(-2).add_(q_sq[:, None]).add_(self.k_sq[None, :]).clamp_(min=0)
        e = (q_sq.sqrt()[:, None] + self.k_norm[None, :]).square_().mul_(self.coef).add_(self.eta)
        return s, e


def distances_decided_at(a: Tensor, b: Tensor, threshold: float) -> Tensor:
    """(len(a), len(b)) float64 distances from the BLAS screen (``_Screen``), recomputed exactly wherever its error
    band could put a pair on the other side of ``threshold``: every ``d <= threshold`` is the exact comparison."""
    a, b = _common_float(a, b)
    screen = _Screen(b, a)
    if not screen.usable:
        return exact_dists(a, b).double()
    s, e = screen.block(a)
    rows, cols = torch.nonzero((s - threshold**2).abs() <= e, as_tuple=True)
    d = s.sqrt_()
    if len(rows):
        d[rows, cols] = exact_pair_dists(a, b, rows, cols).double()
    return d


def _exact_where(q: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
    """Exact distances where ``mask`` is set, +inf elsewhere."""
    picked = int(mask.sum())
    if 4 * picked >= mask.numel():  # most pairs open: the whole block is cheaper
        return exact_dists(q, keys).masked_fill_(~mask, float("inf"))
    rows, cols = mask.nonzero(as_tuple=True)
    d = torch.full(mask.shape, float("inf"), dtype=q.dtype, device=q.device)
    d[rows, cols] = exact_pair_dists(q, keys, rows, cols)
    return d


def _smallest_k(d: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k smallest entries of each row, nearest first, ties to the lowest column."""
    v = d.kthvalue(k, dim=1, keepdim=True).values
    below, tie = d < v, d == v
    need = k - below.sum(1, keepdim=True)
    take = below | (tie & (tie.cumsum(1) <= need))
    idx = take.nonzero()[:, 1].view(d.shape[0], k)
    vals, order = d.gather(1, idx).sort(dim=1, stable=True)
    return vals, idx.gather(1, order)


def _knn(queries: Tensor, keys: Tensor, k: int, leave_one_out: bool, chunk: int) -> tuple[Tensor, Tensor]:
    available = keys.shape[0] - int(leave_one_out)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} needs 1 <= k <= {available} (number of keys{' less one' if leave_one_out else ''})")
    screen = _Screen(keys, queries)
    dists, idx = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        rows = torch.arange(q.shape[0], device=q.device)
        if screen.usable:
            s, e = screen.block(q)
            if leave_one_out:
                s[rows, rows + start] = float("inf")
            # s_exact_(k) <= upper, the k-th smallest upper bound. A key whose exact distance ties or
            # beats the k-th has s_exact <= s_exact_(k) (1 + 4.01u), as the square root rounds
            # monotonically within a relative u, so its lower bound s - e is below `limit` (the 8u
            # widening is again implied by e, kept for a self-contained argument).
            upper = (s + e).kthvalue(k, dim=1).values
            limit = upper.mul_(1 + 8 * screen.u).add_(screen.eta)
            d = _exact_where(q, keys, s.sub_(e) <= limit[:, None])
        else:
            d = exact_dists(q, keys)
            if leave_one_out:
                d[rows, rows + start] = float("inf")
            if not screen.finite:  # NaN rows have no order: the previous exact top-k
                v, i = d.topk(k, dim=1, largest=False)
                dists.append(v)
                idx.append(i)
                continue
        v, i = _smallest_k(d, k)
        dists.append(v)
        idx.append(i)
    if not dists:
        return queries.new_empty((0, k)), torch.empty((0, k), dtype=torch.long, device=queries.device)
    return torch.cat(dists), torch.cat(idx)


def nearest(queries: Tensor, keys: Tensor, k: int = 1, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(distances, indices), each (len(queries), k): the k nearest keys of each query by exact
    Euclidean distance, nearest first, ties to the lowest key index."""
    q, kk = _common_float(queries.flatten(1), keys.flatten(1))
    return _knn(q.contiguous(), kk.contiguous(), k, False, chunk)


def nearest_other(x: Tensor, k: int = 1, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Leave-one-out ``nearest`` within one set: the k nearest other rows of each row of x (the row
    itself excluded, duplicates of it included)."""
    (xx,) = _common_float(x.flatten(1))
    xx = xx.contiguous()
    return _knn(xx, xx, k, True, chunk)


def kth_neighbour_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Exact distance from each row of x to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples, got {x.shape[0]}")
    return nearest_other(x, k, chunk)[0][:, k - 1]


def ball_counts(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Closed-ball membership ``||p - c_j|| <= r_j`` by exact distance: (counts, hit), counts (len(points),)
    the number of balls holding each point, hit (len(centres),) whether a ball holds any point.
    ``radii`` of shape (m, len(centres)) answers m radius sets at once: counts (m, P), hit (m, C)."""
    p, c = _common_float(points.flatten(1), centres.flatten(1))
    p, c = p.contiguous(), c.contiguous()
    sets = radii if radii.dim() == 2 else radii[None]
    counts = torch.zeros(sets.shape[0], p.shape[0], dtype=torch.long, device=p.device)
    hit = torch.zeros(sets.shape[0], c.shape[0], dtype=torch.bool, device=p.device)
    screen = _Screen(c, p, sets)
    if screen.usable:
        r_sq = sets.double().square()
        margin = r_sq * (16 * screen.u) + screen.eta
    for start in range(0, p.shape[0], chunk):
        q = p[start : start + chunk]
        if screen.usable:
            s, e = screen.block(q)
            # Outside the band |s - r^2| <= e + 16u r^2 the side is settled: s_exact <= r^2 (1 - 14u)
            # gives sqrt <= r (1 - 7u), which rounds to at most r; s_exact >= r^2 (1 + 14u) gives a
            # rounded sqrt above r. (Near the sphere d ~ r <= A, so e >= 36u A^2 already covers the
            # 16u r^2; it is kept so the argument needs no such relation.) Pairs inside the band of
            # any radius set are recomputed exactly.
            open_ = [(s - r_sq[j]).abs_() <= e + margin[j] for j in range(sets.shape[0])]
            any_open = open_[0].clone()
            for o in open_[1:]:
                any_open |= o
            d = _exact_where(q, c, any_open)
            inside = [torch.where(open_[j], d <= sets[j], s <= r_sq[j]) for j in range(sets.shape[0])]
        else:
            d = exact_dists(q, c)
            inside = [d <= sets[j] for j in range(sets.shape[0])]
        for j, ins in enumerate(inside):
            counts[j, start : start + chunk] = ins.sum(1)
            hit[j] |= ins.any(0)
    if radii.dim() == 2:
        return counts, hit
    return counts[0], hit[0]
