"""The quickstart's step on the CPU, float32 against bf16 autocast: gan_lightning's loop beside a
plain PyTorch loop of the same nets, loss, optimizers and EMA, timed in one process.

DCGAN nets 28x28 with widths 64 and BatchNorm, non-saturating loss, batch 32, Adam 8e-4 (0.5, 0.999),
EMA of G 0.999 (``exp=quickstart``), random images resident in memory. Reports G iterations/s of
each loop at each precision, the framework/plain ratios and the bf16/float32 speed-up, and whether
this CPU computes bf16 natively (what ``trainer.precision=bf16-mixed-if-native`` asks).
Writes benchmarks/results/quickstart_precision_cpu.json.

    python benchmarks/bench_quickstart_cpu.py                 # 2 repeats of 200 timed steps
    python benchmarks/bench_quickstart_cpu.py --steps 60 --warmup 10 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from benchmarks.bench_loop import UNTIMED_OFF, provenance, timed_training, write_result  # noqa: E402
from gan_lightning.cli import quiet_libraries  # noqa: E402
from gan_lightning.config import load_config  # noqa: E402
from gan_lightning.nets import build_discriminator, build_generator  # noqa: E402
from gan_lightning.precision import cpu_computes_bf16  # noqa: E402

PRECISIONS = {"float32": "32-true", "bf16": "bf16-mixed"}


def quickstart_config(steps: int, precision: str, extra: list[str] | None = None):  # type: ignore[no-untyped-def]
    return load_config(
        [
            "exp=quickstart",
            "data=synthetic",
            "data.image_size=28",
            f"steps={steps}",
            *UNTIMED_OFF,
            "log.every=100",
            "trainer.accelerator=cpu",
            f"trainer.precision={precision}",
            *(extra or []),
        ]
    )


def plain_loop(steps: int, warmup: int, precision: str) -> float:
    """The quickstart written as a plain PyTorch loop; returns G iterations per second."""
    cfg = quickstart_config(steps, precision)
    batch, z_dim, shape = int(cfg.data.batch_size), int(cfg.model.z_dim), (1, 28, 28)
    torch.manual_seed(0)
    G = build_generator(cfg.nets, shape, z_dim)
    D = build_discriminator(cfg.nets, shape, "batch")
    G_ema = build_generator(cfg.nets, shape, z_dim)
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr_g, betas=tuple(cfg.optim.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.optim.lr_d, betas=tuple(cfg.optim.betas))
    data = torch.randint(0, 256, (10000, *shape), dtype=torch.uint8)
    bf16 = precision.startswith("bf16")

    def autocast() -> contextlib.AbstractContextManager[object]:
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    t0 = 0.0
    for it in range(steps):
        if it == warmup:
            t0 = time.perf_counter()
        real = data[torch.randint(0, len(data), (batch,))].float() / 127.5 - 1
        with autocast():
            with torch.no_grad():
                fake = G(torch.randn(batch, z_dim))
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        with autocast():
            g_loss = F.softplus(-D(G(torch.randn(batch, z_dim)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            for e, p in zip(G_ema.parameters(), G.parameters()):
                e.lerp_(p, 1 - cfg.model.ema.decay)
    return (steps - warmup) / (time.perf_counter() - t0)


def framework_loop(steps: int, warmup: int, precision: str) -> float:
    return timed_training(lambda out: quickstart_config(steps, precision, out), warmup)


def main() -> None:
    quiet_libraries()
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=220)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    runs: dict[str, dict[str, list[float]]] = {name: {"plain": [], "gan_lightning": []} for name in PRECISIONS}
    for _ in range(args.repeats):  # alternate, so drift of the machine hits all alike
        for name, precision in PRECISIONS.items():
            runs[name]["plain"].append(plain_loop(args.steps, args.warmup, precision))
            runs[name]["gan_lightning"].append(framework_loop(args.steps, args.warmup, precision))
    best = {name: {loop: max(v) for loop, v in r.items()} for name, r in runs.items()}
    rows = [
        {
            "precision": name,
            "plain_g_iters_per_s": round(best[name]["plain"], 2),
            "gan_lightning_g_iters_per_s": round(best[name]["gan_lightning"], 2),
            "ratio_gan_lightning_over_plain": round(best[name]["gan_lightning"] / best[name]["plain"], 3),
            "all_runs": {loop: [round(x, 2) for x in v] for loop, v in runs[name].items()},
        }
        for name in PRECISIONS
    ]
    result = {
        "benchmark": "the quickstart's step (DCGAN 28x28, widths 64, BatchNorm, batch 32, Adam 8e-4, EMA 0.999), "
        "random images in memory",
        "device": f"CPU ({torch.get_num_threads()} threads, {platform.machine()}, {platform.processor() or 'cpu'})",
        "cpu_computes_bf16": cpu_computes_bf16(),
        "steps_timed": args.steps - args.warmup,
        "warmup_steps": args.warmup,
        "best_of": args.repeats,
        "rows": rows,
        "bf16_speedup": {
            loop: round(best["bf16"][loop] / best["float32"][loop], 3) for loop in ("plain", "gan_lightning")
        },
        **provenance(),
    }
    write_result(result, Path(args.out or Path(__file__).parent / "results" / "quickstart_precision_cpu.json"))


if __name__ == "__main__":
    main()
