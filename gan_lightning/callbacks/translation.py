"""Image-to-image metrics during training (every ``metrics.every`` G steps and at the end)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from gan_lightning.callbacks.run import RunState
from gan_lightning.metrics.translation import (
    DIRECTIONS,
    TargetMemo,
    baseline_metrics,
    describe_translation_measures,
    translation_features,
    translation_metrics,
)


class TranslationMetrics(L.Callback):
    def __init__(
        self,
        datamodule: Any,
        every: int,
        steps: int,
        n: int,
        state: RunState | None = None,
        features: str = "classifier",
        device: str = "cpu",
    ):
        self.dm, self.every, self.steps, self.n, self.state = datamodule, every, steps, n, state
        # trained once, before training starts
        self.classifiers, self.inception = translation_features(datamodule, features, device, verbose=True)
        self.memo: TargetMemo = {}  # the test targets' features, computed by the first evaluation
        # the task's model-free baseline (bicubic upsampling), measured once, logged with every evaluation
        self.baseline = baseline_metrics(datamodule, n, self.classifiers, self.inception, self.memo)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The classifiers (and Inception) were built before the fit: follow the model's device."""
        for clf in self.classifiers.values():
            clf.to(pl_module.device)
        if self.inception is not None:
            self.inception.to(pl_module.device)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        if pl_module.diverged_at is not None:  # agreed across ranks each step, as GenerativeMetrics reads it
            return
        if not (step >= self.steps or (self.every and step % self.every == 0)):
            return
        t0 = time.perf_counter()
        values: dict[str, float] | None = None
        if trainer.is_global_zero:  # rank 0 evaluates the test split
            values = translation_metrics(pl_module, self.dm, self.n, self.classifiers, self.inception, self.memo)
            values.update(self.baseline)
        if trainer.world_size > 1:  # every rank records the same values, so all take part in saving best.ckpt
            values = trainer.strategy.broadcast(values, src=0)
        assert values is not None
        elapsed = time.perf_counter() - t0
        if self.state is not None:
            self.record(step, values, elapsed)
        pl_module.publish_metrics({**values, "time/metrics_s": elapsed})

    def record(self, step: int, values: dict[str, float], elapsed: float) -> None:
        """Into the run's summary: values, directions, the primary key, the classifiers used."""
        assert self.state is not None
        directions = {k: DIRECTIONS[k.split("/")[1]] for k in values}
        primary = next((k for k in ("ab/fid", "ab/l1", "mean/fid", "mean/l1") if k in values), None)  # mean: StarGAN
        self.state.record(step, values, directions, primary)
        self.state.extra.setdefault("metrics", describe_translation_measures(self.classifiers, self.dm))
        self.state.eval_s += elapsed
