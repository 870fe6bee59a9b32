"""prdc (precision, recall, density, coverage) on N x N float64 features: the previous exact path
(non-BLAS cdist on every pair, kept below as the reference) against metrics.distances (BLAS
screening plus exact recheck), with a check that the four values are identical.
Writes benchmarks/results/distances_cpu.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_distances.py            # N = 2000, dim = 2048
    python benchmarks/bench_distances.py --n 1000 --dim 512 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan_lightning.metrics import distances
from gan_lightning.metrics.precision_recall import prdc

EXACT = "donot_use_mm_for_euclid_dist"


# ---- the previous implementation (gan_lightning.metrics.precision_recall before metrics.distances) ----


def old_kth_neighbour_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    out = []
    for start in range(0, x.shape[0], chunk):
        d = torch.cdist(x[start : start + chunk], x, compute_mode=EXACT)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out)


def old_in_balls(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    counts = torch.zeros(points.shape[0], dtype=torch.long)
    hit = torch.zeros(centres.shape[0], dtype=torch.bool)
    for start in range(0, points.shape[0], chunk):
        inside = torch.cdist(points[start : start + chunk], centres, compute_mode=EXACT) <= radii[None, :]
        counts[start : start + chunk] = inside.sum(1)
        hit |= inside.any(0)
    return counts, hit


def old_prdc(real: Tensor, fake: Tensor, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    x, y = real.double().flatten(1), fake.double().flatten(1)
    r_x, r_y = old_kth_neighbour_radii(x, k_pr), old_kth_neighbour_radii(y, k_pr)
    counts, _ = old_in_balls(y, x, r_x)
    counts_r, _ = old_in_balls(x, y, r_y)
    r_x5 = r_x if k_dc == k_pr else old_kth_neighbour_radii(x, k_dc)
    counts5, covered = old_in_balls(y, x, r_x5)
    return {
        "precision": float((counts > 0).double().mean()),
        "recall": float((counts_r > 0).double().mean()),
        "density": float(counts5.double().sum() / (k_dc * y.shape[0])),
        "coverage": float(covered.double().mean()),
    }


def best_of(fn, repeats: int) -> tuple[float, dict[str, float]]:
    best, out = float("inf"), {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


class CountRechecks:
    """Counts the pairs the new path recomputes exactly (a thin wrapper, negligible cost)."""

    def __init__(self) -> None:
        self.pairs = 0
        self.inner = distances.exact_pair_dists

    def __call__(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        self.pairs += rows.shape[0]
        return self.inner(a, b, rows, cols)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="real and fake features, each")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=2, help="best of, for the new path")
    p.add_argument("--old-repeats", type=int, default=1, help="best of, for the old exact path")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "distances_cpu.json"))
    args = p.parse_args()

    g = torch.Generator().manual_seed(0)
    real = torch.randn(args.n, args.dim, generator=g, dtype=torch.float64)
    fake = torch.randn(args.n, args.dim, generator=g, dtype=torch.float64) * 1.01 + 0.01

    counter = CountRechecks()
    distances.exact_pair_dists = counter
    try:
        t_new, new = best_of(lambda: prdc(real, fake), args.repeats)
    finally:
        distances.exact_pair_dists = counter.inner
    t_old, old = best_of(lambda: old_prdc(real, fake), args.old_repeats)
    report = {
        "benchmark": "prdc (k_pr=3, k_dc=5) of N fake vs N real float64 features: old exact cdist path vs "
        "metrics.distances (BLAS screen + exact recheck)",
        "n": args.n,
        "dim": args.dim,
        "dtype": "float64",
        "device": f"CPU ({torch.get_num_threads()} threads, {platform.machine()})",
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seconds": {"old_exact": t_old, "new_blas_recheck": t_new},
        "repeats": {"old_exact": args.old_repeats, "new_blas_recheck": args.repeats},
        "speed_ratio_old_over_new": round(t_old / t_new, 2),
        "values": {"old_exact": old, "new_blas_recheck": new},
        "identical": old == new,
        # the old path takes 6 exact N x N blocks (radii k=3 twice, k=5, three ball tests); the new one
        # screens 4 by BLAS (one sorted k=5 pass gives both radii of X, two radius sets per ball test)
        "exact_pairs_per_run": {"old_exact": 6 * args.n * args.n, "new_blas_recheck": counter.pairs // args.repeats},
        "blas_screened_pairs_per_run": 4 * args.n * args.n,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "command": " ".join(
            ([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else [])
            + ["python", *sys.argv]
        ),
        "date": datetime.date.today().isoformat(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if not report["identical"]:
        raise SystemExit("the new path's values differ from the exact path's")


if __name__ == "__main__":
    main()
