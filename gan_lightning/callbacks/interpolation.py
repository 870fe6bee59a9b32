"""Latent interpolations: lerp and slerp between fixed pairs of random z, one grid per call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from gan_lightning.callbacks.samples import log_image, save_grid, to_unit
from gan_lightning.latent import interpolation_grid


class LatentInterpolation(L.Callback):
    """Every ``every`` G steps and at the end (image data): samples/interp_{lerp,slerp}_step_X.png,
    ``pairs`` rows of ``points`` images each, the same pairs of z every time."""

    def __init__(self, run_dir: Path, every: int, steps: int, pairs: int = 8, points: int = 10, seed: int = 77):
        self.dir = Path(run_dir) / "samples"
        self.every, self.steps, self.pairs, self.points, self.seed = every, steps, pairs, points, seed

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        due = step >= self.steps or (self.every and step % self.every == 0)
        if due and trainer.is_global_zero and pl_module.info.kind == "image":
            self.write(trainer, pl_module, step)

    def write(self, trainer: L.Trainer | None, pl_module: Any, step: int) -> list[Path]:
        g = torch.Generator().manual_seed(self.seed)
        z0, z1 = torch.randn(2, self.pairs, pl_module.z_dim, generator=g)
        labels = pl_module.labels_for(self.pairs)  # conditional models: each row within one class
        y = None if labels is None else labels.repeat_interleave(self.points)
        paths = []
        for mode in ("lerp", "slerp"):
            images = to_unit(pl_module.generate_from(interpolation_grid(z0, z1, self.points, mode), None, y))
            path = self.dir / f"interp_{mode}_step_{step:07d}.png"
            grid = save_grid(images, path, nrow=self.points)
            if trainer is not None:
                log_image(trainer, f"interpolation/{mode}", grid, step)
            paths.append(path)
        return paths
