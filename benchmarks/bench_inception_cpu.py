"""The FID Inception trunk on the CPU: a plain PyTorch loop (batches of 250, glibc malloc's defaults)
beside gan_lightning's extractor (chunks of ``CPU_CHUNK`` with freed memory kept for reuse,
``gan_lightning.cpu_memory``), in one process and in that order, since the malloc settings hold for the
rest of the process once made. Reports images/s, user and system CPU seconds, page faults, peak
resident memory and whether the features are bitwise equal. Writes benchmarks/results/inception_cpu.json.

    python benchmarks/bench_inception_cpu.py                  # 500 images (28x28 grayscale) per loop
    python benchmarks/bench_inception_cpu.py --n 250
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from benchmarks.bench_loop import provenance, write_result  # noqa: E402
from gan_lightning.metrics.features import CPU_CHUNK, InceptionFeatures, full_float32  # noqa: E402

PLAIN_BATCH = 250  # the evaluator's batch, and what the extractor ran at before the CPU chunks


def timed(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int) -> tuple[torch.Tensor, dict]:
    fn(images[:batch])  # warm-up: TorchScript's profiling runs
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    feats = torch.cat([fn(images[i : i + batch]) for i in range(0, len(images), batch)])
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    return feats, {
        "images_per_s": round(len(images) / (t1 - t0), 2),
        "wall_s": round(t1 - t0, 1),
        "user_s": round(r1.ru_utime - r0.ru_utime, 1),
        "sys_s": round(r1.ru_stime - r0.ru_stime, 1),
        "minor_page_faults": r1.ru_minflt - r0.ru_minflt,
        "peak_rss_gb_so_far": round(r1.ru_maxrss / 1e6, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ex = InceptionFeatures().eval()
    images = torch.rand(args.n, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def plain(x: torch.Tensor) -> torch.Tensor:
        with full_float32():
            return ex.trunk(ex.preprocess(x)).float()

    plain_feats, plain_row = timed(plain, images, PLAIN_BATCH)  # first: before the malloc settings
    ours_feats, ours_row = timed(lambda x: ex(x)[0], images, PLAIN_BATCH)
    result = {
        "benchmark": "FID Inception trunk on the CPU (TF1 bilinear resize to 299, float32), 28x28 grayscale inputs",
        "n": args.n,
        "device": f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "plain_pytorch": {"batch": PLAIN_BATCH, "malloc": "glibc defaults", **plain_row},
        "gan_lightning": {"batch": PLAIN_BATCH, "chunk": CPU_CHUNK, "malloc": "reuse_freed_memory", **ours_row},
        "speed_ratio_ours_over_plain": round(ours_row["images_per_s"] / plain_row["images_per_s"], 2),
        "features_bitwise_equal": bool(torch.equal(plain_feats, ours_feats)),
        **provenance(),
    }
    write_result(result, Path(args.out or Path(__file__).parent / "results" / "inception_cpu.json"))


if __name__ == "__main__":
    main()
