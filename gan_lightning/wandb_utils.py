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


def wandb_loggers(trainer: Any) -> list[Any]:
    return [lg for lg in getattr(trainer, "loggers", []) if type(lg).__name__ == "WandbLogger"]


def define_metrics(trainer: Any, directions: dict[str, bool | None]) -> None:
    """Tell wandb each metric's direction, so a run's summary holds the best value (what sweeps read)."""
    for logger in wandb_loggers(trainer):
        for key, higher in directions.items():
            if higher is not None:
                logger.experiment.define_metric(key, summary="max" if higher else "min")


def push_summary(trainer: Any, summary: dict[str, Any]) -> None:
    """The run directory's summary.json as the wandb run summary (under 'run/...'; the metric keys
    themselves keep their best values)."""
    for logger in wandb_loggers(trainer):
        logger.experiment.summary.update({f"run/{k}": v for k, v in summary.items()})
