"""A progress bar in generator steps (not Lightning's optimizer steps), with the D and G losses."""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class StepProgressBar(ProgressBar):
    def __init__(self, steps: int, refresh_every: int = 10):
        super().__init__()
        self.steps, self.refresh_every = steps, max(1, refresh_every)
        self._enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._enabled and trainer.is_global_zero:
            self.bar = tqdm(
                total=self.steps,
                initial=int(pl_module.g_step),
                desc=f"{pl_module.cfg.exp} G steps",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=0.5,
                smoothing=0.05,
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if int(pl_module.g_step) % self.refresh_every == 0:
            metrics = {k: f"{float(v):.3f}" for k, v in trainer.progress_bar_metrics.items()}
            self.bar.set_postfix(metrics, refresh=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)

    def print(self, *args: Any, **kwargs: Any) -> None:
        (self.bar.write if self.bar is not None else print)(" ".join(map(str, args)))
