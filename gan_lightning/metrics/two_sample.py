"""Two-sample statistics on feature arrays ``(N, d)``: is ``fake`` distributed like ``real``?

- ``mmd``: the unbiased MMD² with a Gaussian kernel of median-heuristic bandwidth (Gretton et al.
  2012, "A kernel two-sample test"); about 0 (it can be negative) when the distributions agree.
- ``one_nn_accuracy``: leave-one-out 1-nearest-neighbour accuracy on the pooled labelled set
  (Xu et al. 2018, "An empirical study on evaluation metrics of generative adversarial
  networks"); 0.5 is ideal, about 1.0 means the two sets are separable.
- ``c2st``: a classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting classifier
  two-sample tests"): held-out accuracy of a small classifier and its exact binomial p-value.
- ``wasserstein_critic``: the held-out gap E f(real) − E f(fake) of a critic trained with the
  WGAN-GP objective (Gulrajani et al. 2017), an estimate of the Wasserstein-1 distance
  (Danihelka et al. 2017, "Comparison of maximum likelihood and GAN-based training of Real NVPs";
  listed as "Wasserstein critic" in Borji 2019, "Pros and cons of GAN evaluation measures").

Everything is computed on the CPU in float64. The randomised ones (``c2st``,
``wasserstein_critic``) draw only from a local ``torch.Generator`` seeded by ``seed``: the same
inputs and seed give the same value, whatever the global RNG state, which they leave untouched.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from torch import Tensor

from gan_lightning.metrics.distances import nearest_other, sq_dists_blas

_P = ParamSpec("_P")
_R = TypeVar("_R")

_BLOCK = 1 << 22  # elements of one float64 distance block (32 MiB): sets the row chunk


def _features(x: Tensor | np.ndarray, name: str) -> Tensor:
    """A float64 CPU (N, d) tensor: (N,) is read as N one-dimensional points, (N, ...) is flattened."""
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    t = t.to(device="cpu", dtype=torch.float64)
    if t.is_inference() and not torch.is_inference_mode_enabled():
        t = t.clone()  # a caller's inference-mode tensor, used by autograd here
    if t.ndim == 1:
        t = t[:, None]
    elif t.ndim > 2:
        t = t.flatten(1)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, d) array, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: features contain NaN or infinity")
    return t


def _pair(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, at_least: int) -> tuple[Tensor, Tensor]:
    x, y = _features(real, "real"), _features(fake, "fake")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    if min(x.shape[0], y.shape[0]) < at_least:
        raise ValueError(f"need at least {at_least} real and fake samples each, got {x.shape[0]} and {y.shape[0]}")
    return x, y


def _rows(n_cols: int) -> int:
    """Rows of a distance block against ``n_cols`` columns."""
    return max(1, _BLOCK // max(1, n_cols))


# ----------------------------------------------------------------------------------------------
# MMD


def _upper_sq_dists(z: Tensor, top: float) -> Iterator[Tensor]:
    """The squared distances ‖z_i − z_j‖², i < j, clamped at ``top``, as flat chunks (row-major
    order of the upper triangle). Each call recomputes them identically (same chunks, same operations)."""
    n = z.shape[0]
    step = _rows(n)
    for start in range(0, n - 1, step):
        stop = min(start + step, n - 1)
        block = sq_dists_blas(z[start:stop], z[start:])  # row r (global start + r) vs columns start..n-1
        yield block[torch.ones_like(block, dtype=torch.bool).triu_(1)].clamp_max_(top)


def _pairwise_sq_order_stats(z: Tensor, ranks: list[int], bins: int = 4096, gather_cap: int = 1 << 22) -> list[float]:
    """The ``ranks``-th smallest (0-based) of the N(N−1)/2 squared pairwise distances of ``z``,
    exactly, in O(N·chunk + gather_cap) memory.

    Selection by histogram: for each rank, a pass over the pairs counts the values of its current
    interval [lo, hi) (at first all of them) in ``bins`` sub-intervals; the one holding the rank
    becomes the next interval. Once the interval holds at most ``gather_cap`` values, one more pass
    gathers them and the rank is read off exactly. An interval too narrow to split further (a pile
    of equal or nearly equal values) is resolved by its minimum and that minimum's count. All ranks
    share each pass (the two middle ranks of a median usually share every interval too): a median
    of 2·10⁸ pairs typically takes two passes.
    """
    n_pairs = z.shape[0] * (z.shape[0] - 1) // 2
    for k in ranks:
        if not 0 <= k < n_pairs:
            raise ValueError(f"rank {k} out of range for {n_pairs} pairs")
    # every distance is at most 2 max‖z_i‖; the margin covers rounding of the matrix-product form
    top = (2.0 * float((z * z).sum(1).max().sqrt())) ** 2 * (1.0 + 1e-9) + 1e-300
    # per rank k: (lo, hi, below, inside), with `below` values < lo, `inside` values in [lo, hi),
    # so that below <= k < below + inside
    state = {k: (0.0, math.nextafter(top, math.inf), 0, n_pairs) for k in set(ranks)}
    found: dict[int, float] = {}
    stuck: set[tuple[float, float]] = set()  # intervals a histogram could not split
    changed = "pairwise distances changed between passes (non-deterministic matmul?)"
    while len(found) < len(state):
        jobs: dict[tuple[float, float], str] = {}
        for k, (lo, hi, _, inside) in state.items():
            if k not in found:
                jobs[lo, hi] = "gather" if inside <= gather_cap else "peel" if (lo, hi) in stuck else "split"
        gathered: dict[tuple[float, float], list[Tensor]] = {key: [] for key, job in jobs.items() if job == "gather"}
        split = [key for key, job in jobs.items() if job == "split"]
        edges = {key: torch.linspace(*key, bins + 1, dtype=torch.float64) for key in split}
        counts = {key: torch.zeros(bins, dtype=torch.int64) for key in edges}
        lowest = {key: (math.inf, 0) for key, job in jobs.items() if job == "peel"}  # (minimum, its count)
        for v in _upper_sq_dists(z, top):
            for (lo, hi), job in jobs.items():
                w = v[(v >= lo) & (v < hi)]
                if job == "gather":
                    gathered[lo, hi].append(w)
                elif job == "split":
                    # bin b: edges[b] <= w < edges[b + 1], the outer edges being lo and hi
                    inner = edges[lo, hi][1:-1].contiguous()
                    counts[lo, hi] += torch.bincount(torch.bucketize(w, inner, right=True), minlength=bins)
                elif w.numel():
                    m, c = float(w.min()), int((w == w.min()).sum())
                    best, ties = lowest[lo, hi]
                    lowest[lo, hi] = (m, c) if m < best else (best, ties + c) if m == best else (best, ties)
        ordered = {key: torch.cat(parts).sort().values for key, parts in gathered.items()}
        for k, (lo, hi, below, inside) in state.items():
            if k in found:
                continue
            job = jobs[lo, hi]
            if job == "gather":
                values = ordered[lo, hi]
                if values.numel() != inside:
                    raise RuntimeError(changed)
                found[k] = float(values[k - below])
            elif job == "split":
                cnt, edge = counts[lo, hi], edges[lo, hi]
                if int(cnt.sum()) != inside:
                    raise RuntimeError(changed)
                cum = cnt.cumsum(0)
                b = int(torch.searchsorted(cum, torch.tensor(k - below, dtype=torch.int64), right=True))
                new_lo = lo if b == 0 else float(edge[b])
                new_hi = hi if b == bins - 1 else float(edge[b + 1])
                if (new_lo, new_hi) == (lo, hi):  # no progress: the interval spans a few representable values
                    stuck.add((lo, hi))
                else:
                    state[k] = (new_lo, new_hi, below + (int(cum[b - 1]) if b > 0 else 0), int(cnt[b]))
            else:  # peel off the interval's minimum
                v_min, ties = lowest[lo, hi]
                if k - below < ties:
                    found[k] = v_min
                else:
                    state[k] = (math.nextafter(v_min, math.inf), hi, below + ties, inside - ties)
    return [found[k] for k in ranks]


def median_pairwise_distance(z: Tensor | np.ndarray, max_points: int | None = None) -> float:
    """The median of ‖z_i − z_j‖ over the distinct pairs i < j of the rows of ``z`` (the mean of
    the two middle values for an even number of pairs, as ``numpy.median``), computed exactly in
    bounded memory. ``max_points``: if set and smaller than N, only that many rows, evenly spaced
    in the given order, are used (a deterministic approximation)."""
    t = _features(z, "z")
    if t.shape[0] < 2:
        raise ValueError("the median pairwise distance needs at least 2 points")
    if max_points is not None and t.shape[0] > max_points:
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        t = t[torch.linspace(0, t.shape[0] - 1, max_points, dtype=torch.float64).round().long()]
    t = t - t.mean(0)  # translation leaves distances unchanged and keeps the matrix-product form accurate
    n_pairs = t.shape[0] * (t.shape[0] - 1) // 2
    ranks = sorted({(n_pairs - 1) // 2, n_pairs // 2})
    values = _pairwise_sq_order_stats(t, ranks)
    return sum(math.sqrt(v) for v in values) / len(values)


def mmd(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    sigma: float | None = None,
    max_median_points: int | None = None,
) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) between ``real`` X (n) and ``fake`` Y (m):

        1/(n(n−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(x_i, y_j)

    with k(x, y) = exp(−‖x − y‖² / (2σ²)). σ defaults to the median heuristic: the median of
    ‖z_i − z_j‖ over the distinct pairs of the pooled set Z = X ∪ Y, computed exactly (a chunked
    histogram selection, so 20,000 pooled points need no 2·10⁸-entry array, only a few more passes
    over the pairs). ``max_median_points``: if set, σ uses at most that many pooled points, evenly
    spaced in the order (real..., fake...) — cheaper, no longer the exact pooled median.

    As σ is a symmetric function of the pooled set, the estimate stays unbiased under P = Q: given
    the pooled points, each of the three means averages k over uniformly drawn distinct pairs.
    About 0 (possibly negative) for equal distributions; positive when they differ.
    Raises ValueError when σ would be 0 (at least half of the pooled pairs coincide).
    """
    x, y = _pair(real, fake, at_least=2)
    n, m = x.shape[0], y.shape[0]
    centre = torch.cat([x, y]).mean(0)
    x, y = x - centre, y - centre
    if sigma is None:
        sigma = median_pairwise_distance(torch.cat([x, y]), max_points=max_median_points)
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"MMD kernel bandwidth must be positive and finite, got sigma={sigma}")
    scale = -1.0 / (2.0 * sigma * sigma)

    def kernel_sums(a: Tensor, b: Tensor, same: bool) -> float:
        """Σ k(a_i, b_j) over all pairs (i ≠ j when a is b)."""
        total = 0.0
        step = _rows(b.shape[0])
        for start in range(0, a.shape[0], step):
            k = torch.exp(sq_dists_blas(a[start : start + step], b) * scale)
            if same:
                rows = torch.arange(k.shape[0])
                k[rows, rows + start] = 0.0  # the diagonal, k(x, x) = 1, is left out
            total += float(k.sum())
        return total

    k_xx = kernel_sums(x, x, same=True) / (n * (n - 1))
    k_yy = kernel_sums(y, y, same=True) / (m * (m - 1))
    k_xy = kernel_sums(x, y, same=False) / (n * m)
    return k_xx + k_yy - 2.0 * k_xy


# ----------------------------------------------------------------------------------------------
# 1-NN two-sample test


def one_nn_accuracy(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> dict[str, float]:
    """Leave-one-out 1-nearest-neighbour accuracy (Xu et al. 2018) on the pooled labelled set:
    real points labelled 1, fake 0; each point is given the label of its nearest *other* point
    (Euclidean). Returns ``accuracy`` (over all n + m points), ``accuracy_real`` and
    ``accuracy_fake`` (over each set). 0.5 is ideal; about 1.0 means the sets are separable; below
    0.5 hints at memorisation (fakes closer to reals than to each other).

    Ties in distance are broken by the lowest index in the pooled order (real..., fake...), so
    a real neighbour wins an exact tie with a fake one. Distances are exact (coordinate
    differences, no matrix-product shortcut), so duplicates are at distance exactly 0.
    """
    x, y = _pair(real, fake, at_least=1)
    z = torch.cat([x, y])
    n, total = x.shape[0], z.shape[0]
    is_real = torch.arange(total) < n
    nearest = nearest_other(z, 1)[1][:, 0]  # exact distances; ties to the lowest index
    correct = is_real[nearest] == is_real
    c = correct.double()
    return {
        "accuracy": float(c.mean()),
        "accuracy_real": float(c[:n].mean()),
        "accuracy_fake": float(c[n:].mean()),
    }


# ----------------------------------------------------------------------------------------------
# trained tests: a local generator, a tiny functional network, full-batch Adam


def _halves(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random split of range(n) into a training half (n // 2) and a test half (the rest)."""
    perm = torch.randperm(n, generator=g)
    return perm[: n // 2], perm[n // 2 :]


def _mlp_params(sizes: list[int], g: torch.Generator, zero_output: bool = False) -> list[Tensor]:
    """Weights and biases of an MLP, uniform in ±1/√fan_in (PyTorch's nn.Linear default), from ``g``;
    ``zero_output``: the last layer starts at 0."""
    params = []
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = 0.0 if zero_output and layer == len(sizes) - 2 else 1.0 / math.sqrt(fan_in)
        for shape in ((fan_in, fan_out), (fan_out,)):
            p = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
            params.append(p.requires_grad_())
    return params


def _mlp(params: list[Tensor], h: Tensor) -> Tensor:
    """ReLU hidden layers, a linear output; returns (N,)."""
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = torch.relu(h)
    return h[:, 0]


class _Adam:
    """Full-batch Adam (Kingma & Ba 2015) with L2 ``weight_decay`` added to the gradient, as
    ``torch.optim.Adam`` defines it. A few lines of our own rather than ``torch.optim``: the
    update is fixed here (no foreach/fused variants), and the first ``torch.optim`` step imports
    torch._dynamo, seconds of start-up for a metric that trains for a fraction of a second."""

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params, self.lr, self.betas, self.eps, self.weight_decay = params, lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self, loss: Tensor) -> None:
        grads = torch.autograd.grad(loss, self.params)
        self.t += 1
        b1, b2 = self.betas
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                if self.weight_decay:
                    g = g + self.weight_decay * p
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))


def _trainable(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with gradients on and inference mode off, whatever the caller's context (an
    evaluator under ``torch.no_grad`` or ``torch.inference_mode``)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with torch.inference_mode(False), torch.enable_grad():
            return fn(*args, **kwargs)

    return wrapper


@_trainable
def c2st(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    seed: int = 0,
    hidden: int = 20,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
) -> dict[str, float]:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017).

    Classes are balanced: ``min(n, m)`` points are drawn (by ``seed``) from each set, and each
    class is split 50/50 into train and test. A one-hidden-layer ReLU network (``hidden`` units;
    ``hidden=0``: logistic regression) on features standardised with the training half's mean and
    std is trained to tell real (1) from fake (0): float64 on the CPU, full-batch Adam (``lr``,
    L2 ``weight_decay``), ``steps`` steps of the logistic loss, initialised from the seeded local
    generator. A test point is called real when its logit is > 0.

    Returns held-out ``accuracy``, the one-sided ``p_value`` P[Binomial(n_test, 1/2) ≥ correct]
    (exact; the accuracy of a classifier that cannot tell the sets apart is Binomial(n_test, 1/2)
    / n_test under H0: P = Q), and ``n_test``. About 0.5 and a large p for equal distributions.
    """
    from scipy.stats import binom

    x, y = _pair(real, fake, at_least=2)
    g = torch.Generator().manual_seed(seed)
    per_class = min(x.shape[0], y.shape[0])
    x = x[torch.randperm(x.shape[0], generator=g)[:per_class]]
    y = y[torch.randperm(y.shape[0], generator=g)[:per_class]]
    train, test = _halves(per_class, g)
    fit_set, held_out = torch.cat([x[train], y[train]]), torch.cat([x[test], y[test]])
    lab_train = torch.cat([torch.ones(len(train)), torch.zeros(len(train))]).double()
    lab_test = torch.cat([torch.ones(len(test)), torch.zeros(len(test))]).double()
    mean, std = fit_set.mean(0), fit_set.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays as it is (centred)
    a, b = (fit_set - mean) / std, (held_out - mean) / std
    params = _mlp_params([a.shape[1], hidden, 1] if hidden > 0 else [a.shape[1], 1], g)
    opt = _Adam(params, lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.step(torch.nn.functional.binary_cross_entropy_with_logits(_mlp(params, a), lab_train))
    with torch.no_grad():
        predicted_real = _mlp(params, b) > 0
    correct = int((predicted_real == (lab_test > 0.5)).sum())
    n_test = int(lab_test.numel())
    return {
        "accuracy": correct / n_test,
        "p_value": float(binom.sf(correct - 1, n_test, 0.5)),
        "n_test": float(n_test),
    }


# ----------------------------------------------------------------------------------------------
# Wasserstein critic


@_trainable
def wasserstein_critic(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    seed: int = 0,
    steps: int = 500,
    hidden: int = 64,
    lr: float = 1e-3,
    gp_weight: float = 10.0,
) -> dict[str, float]:
    """The Wasserstein critic estimate (Danihelka et al. 2017; Borji 2019): ``wcritic`` =
    E f(real_test) − E f(fake_test) for a critic f trained on the other halves.

    Each set is split 50/50 by ``seed``. f is an MLP (two ReLU hidden layers of ``hidden`` units,
    float64, CPU, initialised from the seeded local generator) trained by full-batch Adam (``lr``,
    betas (0.5, 0.9)) for ``steps`` steps on the WGAN-GP critic objective (Gulrajani et al. 2017):
    maximise E f(real) − E f(fake) − λ E (‖∇f(x̂)‖ − 1)², λ = ``gp_weight``, at x̂ = εx + (1 − ε)y
    for randomly paired training points and ε ~ U(0, 1), fresh each step. With f close to
    1-Lipschitz the estimate is about W1(real, fake) (Kantorovich–Rubinstein duality), in the
    features' own units: the points are centred and divided by one scalar (their RMS distance to
    the mean), which keeps every distance ratio, and the estimate is scaled back. About 0 (it can
    be negative) for equal distributions.

    The two-sided penalty lets f's slope exceed 1 where that pays, so large distances come out
    somewhat high: for a shift by μ in 1-D the penalised optimum is the linear f of slope
    1 + |μ|/(2λ), an estimate of |μ| + μ²/(2λ) (2.2 for W1 = 2, λ = 10).
    """
    x, y = _pair(real, fake, at_least=2)
    g = torch.Generator().manual_seed(seed)
    x_train, x_test = _halves(x.shape[0], g)
    y_train, y_test = _halves(y.shape[0], g)
    fit = torch.cat([x[x_train], y[y_train]])
    centre = fit.mean(0)
    scale = float(((fit - centre) ** 2).sum(1).mean().sqrt())
    if not scale > 0:
        scale = 1.0  # all training points coincide: nothing to normalise
    xs, ys = (x - centre) / scale, (y - centre) / scale
    xr, yr = xs[x_train], ys[y_train]
    # f starts at 0 (zero output layer): its first steps follow E f(real) − E f(fake), not the
    # penalty, which would otherwise push a random initial slope to norm 1 in whatever direction
    # it had (in 1-D the slope then has to cross 0, against the penalty, to turn round)
    params = _mlp_params([x.shape[1], hidden, hidden, 1], g, zero_output=True)
    opt = _Adam(params, lr=lr, betas=(0.5, 0.9))
    pairs = max(len(x_train), len(y_train))
    for _ in range(steps):
        ia = torch.randint(len(x_train), (pairs,), generator=g)
        ib = torch.randint(len(y_train), (pairs,), generator=g)
        eps = torch.rand(pairs, 1, generator=g, dtype=torch.float64)
        mix = (eps * xr[ia] + (1 - eps) * yr[ib]).requires_grad_()
        (grad,) = torch.autograd.grad(_mlp(params, mix).sum(), mix, create_graph=True)
        penalty = ((grad.norm(dim=1) - 1) ** 2).mean()  # the norm's gradient at 0 is taken as 0
        loss = _mlp(params, yr).mean() - _mlp(params, xr).mean() + gp_weight * penalty
        opt.step(loss)
    with torch.no_grad():
        gap = _mlp(params, xs[x_test]).mean() - _mlp(params, ys[y_test]).mean()
    return {"wcritic": float(gap) * scale}
