"""Fixed-z sample grids (images) and scatter plots with the true modes (toy data)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from gan_lightning.data.base import DataInfo
from gan_lightning.files import replacing, save_figure


def to_unit(x: Tensor) -> Tensor:
    """Model space [-1, 1] -> [0, 1]."""
    return x.add(1.0).div_(2.0).clamp_(0.0, 1.0)


MIN_TILE = 64  # pixels: smaller images (MNIST's 28, CIFAR's 32) are enlarged to be seen


def upscale(images: Tensor, min_size: int = MIN_TILE) -> Tensor:
    """Images smaller than ``min_size`` enlarged by a whole factor, nearest neighbour (every pixel
    becomes a k x k block: nothing is smoothed or invented)."""
    k = math.ceil(min_size / max(1, min(images.shape[-2:])))
    return images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1) if k > 1 else images


def save_grid(images: Tensor, path: Path, nrow: int | None = None) -> Tensor:
    """Save [0, 1] images (N, C, H, W) as one PNG grid, tiles enlarged to at least ``MIN_TILE``
    pixels; returns the grid."""
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(upscale(images.detach().float().cpu()), nrow=nrow, padding=2, pad_value=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:  # a failed write leaves the old picture, not a cut one
        save_image(grid, tmp, format=Path(path).suffix.lstrip(".") or "png")
    return grid


def save_scatter(points: Tensor, info: DataInfo, path: Path, title: str = "") -> None:
    """Generated 2-D points with the mixture's modes and their 3-std circles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = torch.tensor(info.modes)
    fig, ax = plt.subplots(figsize=(5, 5))
    p = points.detach().float().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
    ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="tab:red", label="true modes")
    for cx, cy in modes.tolist():
        ax.add_patch(plt.Circle((cx, cy), 3 * info.mode_std, fill=False, color="tab:red", lw=0.6))
    span = float(modes.abs().max()) * 1.5 + 0.5
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)


class SampleGrids(L.Callback):
    """Every ``every`` G steps and at the end: samples/step_XXXXXXX.png from the fixed z (images)
    or a scatter of ``n_toy`` samples with the true modes (toy), also sent to image-capable loggers."""

    def __init__(self, run_dir: Path, every: int, steps: int, state: Any = None, n_toy: int = 2500):
        self.dir = Path(run_dir) / "samples"
        self.every, self.steps, self.state, self.n_toy = every, steps, state, n_toy

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        if (step >= self.steps or (self.every and step % self.every == 0)) and trainer.is_global_zero:
            t0 = time.perf_counter()
            self.write(trainer, pl_module, step)
            if self.state is not None:
                self.state.eval_s += time.perf_counter() - t0

    def write(self, trainer: L.Trainer, pl_module: Any, step: int) -> Path:
        info: DataInfo = pl_module.info
        path = self.dir / f"step_{step:07d}.png"
        if info.kind == "toy":
            g = torch.Generator().manual_seed(1234)
            save_scatter(pl_module.sample(self.n_toy, generator=g), info, path, f"{pl_module.cfg.exp} step {step}")
            log_image_file(trainer, "samples", path, step)
        elif info.kind == "pair":
            from gan_lightning.data.base import to_model_space

            # Trainer.datamodule is set at run time by Lightning's DataConnector, undeclared in its class
            a, b, _ = trainer.datamodule.test_pairs()  # type: ignore[attr-defined]
            k = min(8, len(a), len(b))  # A and B test folders may hold fewer, and unequal numbers of, images
            images, nrow = pl_module.translation_grid(to_model_space(a[:k]), to_model_space(b[:k]))
            grid = save_grid(to_unit(images), path, nrow=nrow)
            log_image(trainer, "translations", grid, step)
        else:
            grid = save_grid(to_unit(pl_module.sample_fixed()), path, nrow=pl_module.grid_nrow)
            log_image(trainer, "samples", grid, step)
        return path


def log_image(trainer: L.Trainer, key: str, grid: Tensor, step: int) -> None:
    """Send an image grid (C, H, W in [0, 1]) to every logger that takes images."""
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # WandbLogger
            logger.log_image(key=key, images=[grid.permute(1, 2, 0).numpy()], step=step)
        elif (experiment := getattr(logger, "experiment", None)) is not None and hasattr(experiment, "add_image"):
            # TensorBoard
            experiment.add_image(key, grid, global_step=step)


def has_image_logger(trainer: L.Trainer) -> bool:
    return any(
        hasattr(lg, "log_image") or hasattr(getattr(lg, "experiment", None), "add_image") for lg in trainer.loggers
    )


def log_image_file(trainer: L.Trainer, key: str, path: Path | None, step: int) -> None:
    """Send a PNG already written (a toy scatter plot, curves.png) to every logger that takes images."""
    if path is None or not Path(path).is_file() or not has_image_logger(trainer):
        return
    from torchvision.io import ImageReadMode, read_image

    image = read_image(str(path), mode=ImageReadMode.RGB).float().div_(255.0)
    log_image(trainer, key, image, step)
