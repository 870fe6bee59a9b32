"""Weights & Biases logging through Lightning's WandbLogger (offline works: WANDB_MODE=offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gan_lightning.config import to_container


def make_wandb_logger(cfg: DictConfig, run_dir: Path) -> Any:
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError as e:  # pragma: no cover
        raise ImportError("logger=wandb needs the wandb package: pip install wandb") from e
    import os

    run_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=os.environ.get("WANDB_PROJECT", "gan_lightning"),
        name=f"{cfg.exp}/{run_dir.name}",
        group=os.environ.get("GAN_LIGHTNING_GROUP") or str(cfg.exp),
        save_dir=str(run_dir),
        config=to_container(cfg),
    )
