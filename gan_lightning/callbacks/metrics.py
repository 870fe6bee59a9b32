"""Metrics of generated samples during training: every ``metrics.every`` G steps and at the end."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from gan_lightning.callbacks.run import RunState
from gan_lightning.metrics import METRICS
from gan_lightning.registry import ConfigError


class GenerativeMetrics(L.Callback):
    """Evaluates ``names`` on ``n`` samples from a fixed seed (the same z at every evaluation,
    so curves are not noisier than the model), logs ``name/key`` scalars and records them."""

    def __init__(
        self, names: list[str], every: int, steps: int, n: int, state: RunState, context: Any, primary: str = ""
    ):
        self.metrics = {name: METRICS.get(name, "metrics.names") for name in names}
        kind = context.info.kind
        for name, metric in self.metrics.items():
            if kind not in metric.kinds:
                raise ConfigError(
                    f"metric '{name}' needs {' or '.join(metric.kinds)} data, but '{context.info.name}' is {kind}"
                )
        self.every, self.steps, self.n, self.state, self.context = every, steps, n, state, context
        first = next(iter(self.metrics.items()), None)
        self.primary = primary or (f"{first[0]}/{first[1].primary}" if first else None)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        if self.metrics and (step >= self.steps or (self.every and step % self.every == 0)):
            self.evaluate(trainer, pl_module, step)

    def evaluate(self, trainer: L.Trainer, pl_module: Any, step: int) -> dict[str, float]:
        t0 = time.perf_counter()
        samples = pl_module.sample(self.n, generator=torch.Generator().manual_seed(4321))
        values: dict[str, float] = {}
        directions: dict[str, bool] = {}
        for name, metric in self.metrics.items():
            for key, value in metric.fn(samples, self.context).items():
                values[f"{name}/{key}"] = value
                directions[f"{name}/{key}"] = metric.higher_is_better[key]
        elapsed = time.perf_counter() - t0
        self.state.eval_s += elapsed
        self.state.record(step, values, directions, self.primary)
        pl_module.log_scalars({**values, "time/metrics_s": elapsed})
        return values
