"""A progress bar in generator steps (not Lightning's optimizer steps), with the D and G losses.

On a terminal (or with ``GAN_LIGHTNING_PROGRESS=1``) a tqdm bar; otherwise (a log file, or
``GAN_LIGHTNING_PROGRESS=0``) one plain line at every 10% of the run, so a log gets ~10 lines.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm

from gan_lightning.progress import progress_enabled


class StepProgressBar(ProgressBar):
    def __init__(self, steps: int, refresh_every: int = 10, lines: int = 10):
        super().__init__()
        self.steps, self.refresh_every, self.lines = steps, max(1, refresh_every), max(1, lines)
        self._enabled = True
        self.bar: tqdm[Any] | None = None
        self._line_mode = False  # plain lines instead of the bar
        self._start_step, self._start_time, self._last_line, self._exp = 0, 0.0, -1, "train"

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._start_step, self._start_time = int(pl_module.g_step), time.perf_counter()
        self._last_line, self._exp = self._start_step, str(getattr(pl_module.cfg, "exp", "train"))
        self._line_mode = not progress_enabled()
        if not self._line_mode:
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
        if self._line_mode:
            step = int(pl_module.g_step)
            if self._decile(step) > self._decile(self._last_line):
                self._write_line(trainer, step)
            return
        if self.bar is None:
            return
        self.bar.update(1)
        if int(pl_module.g_step) % self.refresh_every == 0:
            metrics = {k: f"{float(v):.3f}" for k, v in trainer.progress_bar_metrics.items()}
            self.bar.set_postfix(metrics, refresh=False)

    def _decile(self, step: int) -> int:
        """Which tenth (with ``lines=10``) of the run ``step`` has reached."""
        return step * self.lines // max(1, self.steps)

    def _write_line(self, trainer: L.Trainer, step: int) -> None:
        elapsed = time.perf_counter() - self._start_time
        rate = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
        losses = " ".join(f"{k}={float(v):.3f}" for k, v in trainer.progress_bar_metrics.items())
        pct = 100 * step // max(1, self.steps)
        line = f"{self._exp}: G step {step}/{self.steps} ({pct}%), {rate:.3g} G steps/s"
        print(line + (f", {losses}" if losses else ""), file=sys.stderr, flush=True)
        self._last_line = step

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._line_mode:
            self._line_mode = False
            step = int(pl_module.g_step)
            if step != self._last_line:  # stopped between two tenths: diverged, interrupted
                self._write_line(trainer, step)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)

    def print(self, *args: Any, **kwargs: Any) -> None:
        (self.bar.write if self.bar is not None else print)(" ".join(map(str, args)))
