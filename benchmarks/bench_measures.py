"""Wall time of each evaluation measure on one set of N held-out Fashion-MNIST test images against
N training images (the domain classifier's features, extracted once and shared), beside the time
of extracting those features: which measures dominate an evaluation. Writes
benchmarks/results/measures_<device>.json.

    python benchmarks/bench_measures.py               # N = 2000, every measure a set can take
    python benchmarks/bench_measures.py --n 10000 --metrics fid,kid,prdc,mmd
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

from gan_lightning.config import load_config  # noqa: E402
from gan_lightning.data import build_datamodule  # noqa: E402
from gan_lightning.data.base import to_model_space  # noqa: E402
from gan_lightning.metrics.degradations import all_set_measures, degraded_sets  # noqa: E402
from gan_lightning.metrics.evaluator import Evaluator  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--metrics", default="", help="comma list (default: every measure a set of images can take)")
    p.add_argument("--data-dir", default=None, help="default: the config's (Fashion-MNIST found on the machine)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    names = [m for m in args.metrics.split(",") if m] or all_set_measures()
    cfg = load_config(["exp=quickstart", *([f"data.data_dir={args.data_dir}"] if args.data_dir else [])])
    dm = build_datamodule(cfg)
    dm.prepare()
    ev = Evaluator(names, dm.info, dm, n_ref=args.n, prdc_n=args.n, verbose=False).prepare()
    t0 = time.perf_counter()
    _ = ev.reference  # the reference features (cached on disk after the first run)
    reference_s = time.perf_counter() - t0
    images, labels = degraded_sets(dm.split(train=False), dm.split(train=True), args.n)["real"]
    t0 = time.perf_counter()
    data = ev.extract(to_model_space(images.mul(255)))
    extract_s = time.perf_counter() - t0
    data["requested"] = labels.long()
    seconds: dict[str, float] = {}
    for name, spec in ev.specs.items():
        t0 = time.perf_counter()
        spec.fn(ev, data)
        seconds[name] = round(time.perf_counter() - t0, 3)
        print(f"{name:12s} {seconds[name]:9.2f} s", flush=True)
    result = {
        "benchmark": "measures",
        "n": args.n,
        "features": "classifier (128-d)",
        "extract_s": round(extract_s, 3),
        "reference_s": round(reference_s, 3),
        "seconds": seconds,
        "total_s": round(sum(seconds.values()) + extract_s, 3),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "command": " ".join(["python", *sys.argv]),
    }
    out = Path(args.out or Path(__file__).parent / "results" / "measures_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"features of {args.n} images: {extract_s:.2f} s; written to {out}")


if __name__ == "__main__":
    main()
