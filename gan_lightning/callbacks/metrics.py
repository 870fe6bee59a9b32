"""Metrics during training: every ``metrics.every`` G steps and at the end, on the EMA generator
and the raw one, correct under DDP.

Under DDP each rank generates its own shard of one seeded set of z (so N ranks evaluate
exactly the samples one process would), extracts features of its shard, the shards are
gathered in rank order without duplicates, every rank reduces them to the same values, and
the rank-zero loggers write them. Metrics and their extractors live here, never in the
model's ``state_dict`` (so never in checkpoints).
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from torch import Tensor

from gan_lightning.callbacks.run import RunState
from gan_lightning.metrics.evaluator import Evaluator


def gather_rows(trainer: L.Trainer | None, x: Tensor) -> Tensor:
    """Concatenate every rank's rows in rank order (shards may differ in length by one)."""
    if trainer is None or trainer.world_size == 1:
        return x
    strategy = trainer.strategy
    device = strategy.root_device
    size = torch.tensor([len(x)], device=device)
    sizes = strategy.all_gather(size).view(-1).tolist()
    padded = torch.zeros(int(max(sizes)), *x.shape[1:], dtype=x.dtype, device=device)
    padded[: len(x)] = x.to(device)
    everything = strategy.all_gather(padded)
    return torch.cat([everything[r, : int(n)] for r, n in enumerate(sizes)]).cpu()


def shard(n: int, rank: int, world: int) -> slice:
    """Rank's contiguous part of range(n); sizes differ by at most one."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class GenerativeMetrics(L.Callback):
    """The evaluator's metrics every ``every`` G steps and at ``steps``, on ``n`` samples, logged
    under their keys (``fid``, ``raw/fid``, ...) so ``ModelCheckpoint(monitor=...)`` can use them.
    ``state`` is the run's summary (None outside ``gan-lightning train``)."""

    def __init__(
        self,
        evaluator: Evaluator,
        every: int,
        steps: int,
        n: int,
        state: RunState | None = None,
        primary: str = "",
        raw_too: bool = True,
        seed: int = 4321,
    ):
        self.evaluator, self.every, self.steps, self.n = evaluator, every, steps, n
        self.state, self.raw_too, self.seed = state, raw_too, seed
        self.primary = primary or evaluator.default_primary()

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        from gan_lightning.wandb_utils import define_metrics

        self.evaluator.to(pl_module.device)  # prepared before the fit (train.metrics_device): follow the model

        if trainer.is_global_zero:
            define_metrics(trainer, {p + k: d for k, d in self.evaluator.directions.items() for p in ("", "raw/")})

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        if pl_module.diverged_at is not None:  # agreed across ranks each step: no rank evaluates alone
            return
        if step >= self.steps or (self.every and step % self.every == 0):
            self.evaluate(trainer, pl_module, step)

    def evaluate(self, trainer: L.Trainer | None, pl_module: Any, step: int) -> dict[str, float]:
        t0 = time.perf_counter()
        values = compute_metrics(self.evaluator, pl_module, self.n, trainer, self.raw_too, self.seed)
        elapsed = time.perf_counter() - t0
        directions = {p + k: d for k, d in self.evaluator.directions.items() for p in ("", "raw/")}
        if self.state is not None:
            self.state.eval_s += elapsed
            self.state.record(step, values, {k: d for k, d in directions.items() if d is not None}, self.primary)
            if "metrics" not in self.state.extra:
                self.state.extra["metrics"] = self.evaluator.describe()
        pl_module.publish_metrics({**values, "time/metrics_s": elapsed})
        return values


def compute_metrics(
    evaluator: Evaluator, model: Any, n: int, trainer: L.Trainer | None = None, raw_too: bool = True, seed: int = 4321
) -> dict[str, float]:
    """Metrics of ``n`` samples from a fixed seed, for the sampling generator and (EMA) the raw one."""
    rank = trainer.global_rank if trainer is not None else 0
    world = trainer.world_size if trainer is not None else 1
    part = shard(n, rank, world)
    z = model.draw_z(n, torch.Generator().manual_seed(seed))[part]  # from the model's prior
    labels = model.labels_for(n)
    y = None if labels is None else labels[part]
    values: dict[str, float] = {}
    for prefix, net in model.generators_to_evaluate(raw_too).items():
        local = evaluator.extract_generated(model.generate_from(z, net, y), model, y)
        data = {k: gather_rows(trainer, v) for k, v in local.items()}
        values.update({prefix + k: v for k, v in evaluator.compute(data, (model, net), prefix).items()})
    return values
