"""Metrics of generated samples, by name (``metrics.names``).

A metric is a function ``fn(samples, context) -> {key: value}`` plus the direction of each key;
``context`` gives the data (mixture centres, real features...). Keys are logged as ``name/key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gan_lightning.metrics.modes import mode_statistics
from gan_lightning.registry import Registry


@dataclass(frozen=True)
class Metric:
    fn: Callable[[Tensor, Any], dict[str, float]]
    higher_is_better: dict[str, bool]
    primary: str  # key that picks best.ckpt
    kinds: tuple[str, ...]  # data kinds it applies to ("toy", "image")


METRICS: Registry[Metric] = Registry("metric")


def _modes(samples: Tensor, ctx: Any) -> dict[str, float]:
    return mode_statistics(samples, torch.tensor(ctx.info.modes), ctx.info.mode_std)


METRICS.register("modes")(
    Metric(_modes, {"covered": True, "high_quality": True, "kl": False}, primary="covered", kinds=("toy",))
)

__all__ = ["METRICS", "Metric", "mode_statistics"]
