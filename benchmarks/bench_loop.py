"""Training-loop benchmark: gan_lightning's loop beside a plain PyTorch loop of the same nets,
losses, penalty and optimizer, timed in one process.

WGAN-GP, DCGAN nets at 32x32 (no BatchNorm in the critic), n_critic 5, Adam 1e-4 (0, 0.9),
data resident on the device in both loops. Reports generator iterations/s and real images/s of
each loop and their ratio (also for ``perf.fast=true``, and with bf16 autocast on a GPU), plus
the amortised per-step cost of the metrics callback at its default interval.
Writes benchmarks/results/loop_<device>.json.

    python benchmarks/bench_loop.py                  # GPU: batches 64 and 256; CPU: small
    python benchmarks/bench_loop.py --batches 64 --steps 200 --warmup 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")
os.environ.setdefault("WANDB_MODE", "disabled")

from gan_lightning.cli import quiet_libraries  # noqa: E402
from gan_lightning.config import load_config  # noqa: E402
from gan_lightning.losses import LOSSES  # noqa: E402
from gan_lightning.nets import build_discriminator, build_generator  # noqa: E402
from gan_lightning.penalties import PENALTIES  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# what a timed run leaves out: loggers, metrics, pictures, checkpoints, the progress bar
UNTIMED_OFF = [
    "logger=[]",
    "metrics.names=[]",
    "log.progress=false",
    "log.sample_every=0",
    "log.ckpt_every=0",
    "log.interpolate=false",
    "log.neighbours=false",
]


def bench_config(batch: int, steps: int, device: torch.device, extra: list[str] | None = None):  # type: ignore[no-untyped-def]
    return load_config(
        [
            "exp=wgan_gp",
            "data=synthetic",
            "data.image_size=32",
            f"data.batch_size={batch}",
            f"steps={steps}",
            *UNTIMED_OFF,
            "log.every=100",
            f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
            *(extra or []),
        ]
    )


def plain_loop(batch: int, steps: int, warmup: int, device: torch.device) -> float:
    """The same model written as a plain PyTorch loop; returns G iterations per second."""
    cfg = bench_config(batch, steps, device)
    torch.manual_seed(0)
    G = build_generator(cfg.nets, (1, 32, 32), cfg.model.z_dim).to(device)
    D = build_discriminator(cfg.nets, (1, 32, 32), "none").to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.9))
    loss, gp = LOSSES["wasserstein"], PENALTIES["gp"]
    data = torch.randint(0, 256, (10000, 1, 32, 32), dtype=torch.uint8, device=device)
    n_critic, z_dim = 5, cfg.model.z_dim

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device)

    t0 = 0.0
    for it in range(steps):
        if it == warmup:
            sync(device)
            t0 = time.perf_counter()
        for _ in range(n_critic):
            real = data[torch.randint(0, len(data), (batch,), device=device)].float() / 127.5 - 1
            with torch.no_grad():
                fake = G(torch.randn(batch, z_dim, device=device))
            d_loss = loss.d_loss(D(real), D(fake)) + 10.0 * gp(D, real, fake, rand)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        g_loss = loss.g_loss(D(G(torch.randn(batch, z_dim, device=device))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
    sync(device)
    return (steps - warmup) / (time.perf_counter() - t0)


class StepTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        step = int(pl_module.g_step)
        if step == self.warmup:
            sync(pl_module.device)
            self.t0 = time.perf_counter()
        elif step > self.warmup:
            if step == int(pl_module.cfg.steps):
                sync(pl_module.device)
            self.t1, self.steps = time.perf_counter(), step - self.warmup


def timed_training(config: Callable[[list[str]], Any], warmup: int) -> float:
    """G iterations per second of ``train(config([out=...]))`` after ``warmup`` G steps, in a scratch run directory."""
    from gan_lightning.train import train

    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        train(config([f"out={tmp}/run"]), callbacks=[timer])
    return timer.steps / (timer.t1 - timer.t0)


def framework_loop(batch: int, steps: int, warmup: int, device: torch.device, extra: list[str] | None = None) -> float:
    return timed_training(lambda out: bench_config(batch, steps, device, [*out, *(extra or [])]), warmup)


def metrics_cost(device: torch.device, n: int, interval: int) -> dict[str, float]:
    """Seconds of one evaluation of the image experiments' default metrics (fid + classes in the
    domain classifier's space, n samples, EMA and raw G) and its cost per G step at ``interval``."""
    from gan_lightning.callbacks.metrics import compute_metrics
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.evaluator import Evaluator
    from gan_lightning.models import build_model

    cfg = bench_config(64, 1, device, ["model.ema.decay=0.999", "metrics.names=[fid,classes]"])
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm.info).to(device)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GAN_LIGHTNING_CACHE"] = cache
        ev = Evaluator(["fid", "classes"], dm.info, dm, n_ref=n, device=device).prepare()
        compute_metrics(ev, model, 256)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        compute_metrics(ev, model, n)
        sync(device)
        seconds = time.perf_counter() - t0
    return {
        "n": n,
        "interval_g_steps": interval,
        "seconds_per_evaluation": round(seconds, 3),
        "ms_per_g_step_amortised": round(1000 * seconds / interval, 3),
    }


def provenance() -> dict[str, object]:
    """Versions, command and date, recorded with every benchmark result."""
    import lightning

    return {
        "versions": {
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "python": platform.python_version(),
        },
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(result: dict[str, object], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def main() -> None:
    quiet_libraries()
    p = argparse.ArgumentParser()
    p.add_argument("--batches", default=None, help="comma list (default: 64,256 on GPU, 64 on CPU)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--metrics-n", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batches = [int(b) for b in (args.batches or ("64,256" if gpu else "64")).split(",")]
    steps = args.steps or (300 if gpu else 30)
    warmup = args.warmup or (50 if gpu else 5)
    rows = []
    for batch in batches:
        plain, ours, fast, fast_bf16 = [], [], [], []
        for _ in range(args.repeats):  # alternate, so drift of the machine hits all alike
            plain.append(plain_loop(batch, steps, warmup, device))
            ours.append(framework_loop(batch, steps, warmup, device))
            fast.append(framework_loop(batch, steps, warmup, device, ["perf.fast=true"]))
            if gpu:
                bf16 = ["perf.fast=true", "trainer.precision=bf16-mixed"]
                fast_bf16.append(framework_loop(batch, steps, warmup, device, bf16))
        best_plain, best_ours, best_fast = max(plain), max(ours), max(fast)
        rows.append(
            {
                "batch": batch,
                "plain_g_iters_per_s": round(best_plain, 2),
                "gan_lightning_g_iters_per_s": round(best_ours, 2),
                "plain_real_images_per_s": round(best_plain * 5 * batch, 1),
                "gan_lightning_real_images_per_s": round(best_ours * 5 * batch, 1),
                "ratio_gan_lightning_over_plain": round(best_ours / best_plain, 3),
                "fast_g_iters_per_s": round(best_fast, 2),
                "ratio_fast_over_plain": round(best_fast / best_plain, 3),
                **(
                    {
                        "fast_bf16_g_iters_per_s": round(max(fast_bf16), 2),
                        "ratio_fast_bf16_over_plain": round(max(fast_bf16) / best_plain, 3),
                    }
                    if fast_bf16
                    else {}
                ),
                "all_runs": {
                    "plain": [round(v, 2) for v in plain],
                    "gan_lightning": [round(v, 2) for v in ours],
                    "fast": [round(v, 2) for v in fast],
                    "fast_bf16": [round(v, 2) for v in fast_bf16],
                },
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)

    result = {
        "benchmark": "WGAN-GP, DCGAN nets 32x32, n_critic 5, Adam 1e-4 (0, 0.9), data resident on the device",
        "device": torch.cuda.get_device_name(0)
        if gpu
        else f"CPU ({torch.get_num_threads()} threads, {platform.machine()})",
        "steps_timed": steps - warmup,
        "warmup_steps": warmup,
        "best_of": args.repeats,
        "rows": rows,
        "metrics_callback": metrics_cost(device, args.metrics_n or (10000 if gpu else 1000), 1000),
        **provenance(),
    }
    write_result(result, Path(args.out or Path(__file__).parent / "results" / f"loop_{device.type}.json"))


if __name__ == "__main__":
    main()
