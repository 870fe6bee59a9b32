"""Per-step cost on small nets: the mode-collapse lab's protocol (``gmm_grid_pacgan_protocol``: MLP G 4x400
with BatchNorm, maxout D 3x200x5, non-saturating loss, Adam, batch 100) in gan_lightning beside a plain PyTorch
loop of the same nets, loss and optimizer (torch's default Adam, and its fused kernel as gan_lightning uses on
the CPU), timed in one process on one thread (as the lab runs its seeds).

With nets this small the fixed cost of a step (Lightning's hooks, logging, the RNG bookkeeping of exact resume)
is what a user waits for: the lab's studies are thousands of such steps per seed. Reports G iterations/s of
each loop and their ratio. Writes benchmarks/results/toy_<device>.json.

    python benchmarks/bench_toy.py                 # 600 steps, 100 warm-up, best of 2, one thread
    python benchmarks/bench_toy.py --steps 2000 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")
os.environ.setdefault("WANDB_MODE", "disabled")

from benchmarks.bench_loop import UNTIMED_OFF, provenance, timed_training, write_result  # noqa: E402
from gan_lightning.cli import quiet_libraries  # noqa: E402
from gan_lightning.config import load_config  # noqa: E402
from gan_lightning.data.toy import MIXTURE_STD, mixture_centres, sample_mixture  # noqa: E402
from gan_lightning.losses import LOSSES  # noqa: E402
from gan_lightning.nets import build_discriminator, build_generator  # noqa: E402

EXPERIMENT = "gmm_grid_pacgan_protocol"


def toy_config(steps: int, extra: list[str] | None = None):  # type: ignore[no-untyped-def]
    return load_config(
        [
            f"exp={EXPERIMENT}",
            f"steps={steps}",
            *UNTIMED_OFF,
            "trainer.accelerator=cpu",
            *(extra or []),
        ]
    )


def plain_loop(steps: int, warmup: int, fused: bool = False) -> float:
    """The protocol's nets, loss and optimizer as a plain PyTorch loop; G iterations per second.
    ``fused``: torch's fused Adam kernel (what gan_lightning uses on the CPU), else torch's default."""
    cfg = toy_config(steps)
    torch.manual_seed(0)
    G = build_generator(cfg.nets, (2,), cfg.model.z_dim)
    D = build_discriminator(cfg.nets, (2,), "none")
    betas = tuple(cfg.optim.betas)
    kw = {"fused": True} if fused else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr_g, betas=betas, **kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.optim.lr_d, betas=betas, **kw)
    loss = LOSSES[cfg.model.loss]
    batch, z_dim = int(cfg.data.batch_size), int(cfg.model.z_dim)
    data, _ = sample_mixture(mixture_centres("grid"), MIXTURE_STD["grid"], batch * steps, torch.Generator())
    t0 = 0.0
    for it in range(steps):
        if it == warmup:
            t0 = time.perf_counter()
        real = data[it * batch : (it + 1) * batch]
        with torch.no_grad():
            fake = G(torch.randn(batch, z_dim))
        d_loss = loss.d_loss(D(real), D(fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        g_loss = loss.g_loss(D(G(torch.randn(batch, z_dim))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
    return (steps - warmup) / (time.perf_counter() - t0)


def framework_loop(steps: int, warmup: int) -> float:
    return timed_training(lambda out: toy_config(steps, out), warmup)


def main() -> None:
    quiet_libraries()
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    plain, fused, ours = [], [], []
    for _ in range(args.repeats):  # alternate, so drift of the machine hits all alike
        plain.append(plain_loop(args.steps, args.warmup))
        fused.append(plain_loop(args.steps, args.warmup, fused=True))
        ours.append(framework_loop(args.steps, args.warmup))

    result = {
        "benchmark": f"{EXPERIMENT}: MLP G 4x400 + BatchNorm, maxout D 3x200x5, NS loss, Adam, batch 100",
        "device": f"CPU ({torch.get_num_threads()} threads, {platform.machine()}, {platform.processor() or 'cpu'})",
        "steps_timed": args.steps - args.warmup,
        "warmup_steps": args.warmup,
        "best_of": args.repeats,
        "plain_g_iters_per_s": round(max(plain), 1),
        "gan_lightning_g_iters_per_s": round(max(ours), 1),
        "ratio_gan_lightning_over_plain": round(max(ours) / max(plain), 3),
        "plain_fused_adam_g_iters_per_s": round(max(fused), 1),
        "ratio_gan_lightning_over_plain_fused_adam": round(max(ours) / max(fused), 3),
        "plain_ms_per_step": round(1000 / max(plain), 2),
        "gan_lightning_ms_per_step": round(1000 / max(ours), 2),
        "all_runs": {
            "plain": [round(v, 1) for v in plain],
            "plain_fused_adam": [round(v, 1) for v in fused],
            "gan_lightning": [round(v, 1) for v in ours],
        },
        **provenance(),
    }
    write_result(result, Path(args.out or Path(__file__).parent / "results" / "toy_cpu.json"))


if __name__ == "__main__":
    main()
