"""The run's lifecycle: checkpoints, signals, divergence, best-by-metric and summary.json.

``RunManager`` is a Lightning ``Checkpoint`` (so Lightning calls it after the other callbacks of
a step). Checkpoints are written only at step boundaries, which is what makes a resume exact:
a SIGINT/SIGTERM sets a flag, and the step in flight finishes before the checkpoint is written.
"""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from gan_lightning import __version__
from gan_lightning.checkpoint import state_dict_sha1
from gan_lightning.files import (
    RunWriteError,
    commit_file,
    human_bytes,
    write_error_line,
    write_json,
)
from gan_lightning.rundir import read_summary

if TYPE_CHECKING:
    from gan_lightning.models.base import GANModule


@dataclass
class RunState:
    """What the summary reports, shared by the callbacks of one run."""

    run_dir: Path
    exp: str
    seed: int
    steps: int
    status: str = "completed"
    steps_done: int = 0
    final: dict[str, Any] = field(default_factory=dict)
    best: dict[str, dict[str, float]] = field(default_factory=dict)
    primary: str | None = None
    directions: dict[str, bool] = field(default_factory=dict)  # key -> higher is better
    improved_at: int | None = None  # step at which the primary metric last improved
    diverged_at: int | None = None
    error: str | None = None
    eval_s: float = 0.0
    wall_s_before: float = 0.0  # wall time of earlier sessions of a resumed run
    resumed_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(
        self, step: int, values: dict[str, float], higher_is_better: dict[str, bool], primary: str | None
    ) -> None:
        """New metric values at ``step``: update final, per-key best and the primary's improvement."""
        self.directions.update(higher_is_better)
        if primary is not None:  # the run's metrics.primary; it may change on resume, as metrics.* may
            self.primary = primary
        self.final.update({k: float(v) for k, v in values.items()})
        self.final["step"] = step
        for key, value in values.items():
            if key not in higher_is_better or not math.isfinite(value):
                continue
            old = self.best.get(key)
            better = old is None or (value > old["value"] if higher_is_better[key] else value < old["value"])
            if better:
                self.best[key] = {"value": float(value), "step": step}
                if key == self.primary:
                    self.improved_at = step

    def state_dict(self) -> dict[str, Any]:
        return {
            "final": dict(self.final),
            "best": dict(self.best),
            "primary": self.primary,
            "directions": dict(self.directions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.final, self.best = dict(state["final"]), dict(state["best"])
        self.primary, self.directions = state["primary"], dict(state["directions"])


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
    except Exception:
        return None


def device_name(trainer: L.Trainer | None) -> str:
    if trainer is not None and trainer.strategy.root_device.type == "cuda" and torch.cuda.is_available():
        return f"{trainer.world_size} x {torch.cuda.get_device_name(0)}"
    n = trainer.world_size if trainer is not None else 1
    return f"{n} x CPU ({torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    import lightning

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "gan_lightning": __version__,
    }


def weights_sha1(module: torch.nn.Module) -> str:
    """SHA-1 of every tensor of a module's state dict (``state_dict_sha1``)."""
    return state_dict_sha1(module.state_dict())


def rank_digests(trainer: L.Trainer, digest: str) -> list[str]:
    """Every rank's digest, in rank order (a collective: all ranks call it)."""
    if trainer.world_size == 1:
        return [digest]
    local = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=trainer.strategy.root_device)
    everything = trainer.strategy.all_gather(local)
    return [bytes(row.cpu().tolist()).hex() for row in everything]


def outcome_line(summary: dict[str, Any]) -> str:
    """One line on a finished run: status, steps, what a divergence left behind, final metrics."""
    line = f"{summary['status']}: {summary['steps_done']}/{summary['steps']} G steps"
    if summary.get("diverged_at") is not None:
        kept = summary.get("checkpoints") or []
        line += f", a loss became non-finite at step {summary['diverged_at']}; " + (
            f"the checkpoints written before it are kept: {', '.join(kept)}"
            if kept
            else "no checkpoint was written before it"
        )
    final = {k: v for k, v in (summary.get("final") or {}).items() if k != "step"}
    if final:
        line += " | " + ", ".join(f"{k}={v:.4g}" if v is not None else f"{k}=non-finite" for k, v in final.items())
    return line


class RunManager(Checkpoint):
    """Writes checkpoints/last.ckpt every ``log.ckpt_every`` steps and at the end, best.ckpt when
    the primary metric improves, step=N.ckpt every ``log.keep_every``; stops cleanly on
    SIGINT/SIGTERM (status interrupted) and on a non-finite loss (status diverged)."""

    def __init__(self, state: RunState, log_cfg: Any):
        self.state = state
        self.ckpt_every, self.keep_every = int(log_cfg.ckpt_every), int(log_cfg.keep_every)
        self.check_every = max(1, int(log_cfg.every))
        self.ckpt_dir = state.run_dir / "checkpoints"
        self._stop_signal: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self._t0 = time.perf_counter()
        self._start_step = 0
        self._trainer: L.Trainer | None = None
        self._last_saved: int | None = None  # G step of checkpoints/last.ckpt

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a final checkpoint
        self._stop_signal = signum
        print(
            f"\n[gan_lightning] {signal.Signals(signum).name}: finishing this step, then saving a checkpoint "
            "(Ctrl-C again to quit at once)",
            file=sys.stderr,
        )

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    # ------------------------------------------------------------------ lightning hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._trainer = trainer
        self._t0 = time.perf_counter()
        self._start_step = int(pl_module.g_step)
        last = self.ckpt_dir / "last.ckpt"
        if self.state.resumed_from and last.is_file() and Path(self.state.resumed_from).resolve() == last.resolve():
            self._last_saved = self._start_step
        self.state.eval_s = 0.0
        self._install_signals()

    def _stop_requested(self, trainer: L.Trainer, step: int) -> bool:
        local = self._stop_signal is not None
        if trainer.world_size == 1:
            return local
        # a collective every few steps: any rank's signal stops all ranks at the same step
        if step % self.check_every != 0:
            return False
        return bool(trainer.strategy.reduce_boolean_decision(local, all=False))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(pl_module.g_step)
        self.state.steps_done = step
        if pl_module.diverged_at is not None:  # watched by the model, the same on every rank
            self.state.status, self.state.diverged_at = "diverged", pl_module.diverged_at
            trainer.should_stop = True
            return
        if self.state.improved_at == step:  # before a stop: summary.json already names this step the best
            self.save(trainer, "best.ckpt")
        if self.keep_every and step % self.keep_every == 0:  # before a stop, which would skip it for good
            self.save(trainer, f"step={step}.ckpt")
        if self._stop_requested(trainer, step):
            self.save(trainer, "last.ckpt")
            if step < self.state.steps:  # a stop at the last step: the run is complete
                self.state.status = "interrupted"
            trainer.should_stop = True
            return
        if step >= self.state.steps or (self.ckpt_every and step % self.ckpt_every == 0):
            self.save(trainer, "last.ckpt")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.state.steps_done = int(pl_module.g_step)
        trained = self.state.steps_done > self._start_step
        if self.state.status == "completed" and trained and self._last_saved != self.state.steps_done:
            # stopped by Lightning itself (trainer.max_time, EarlyStopping): keep the step it reached
            self.save(trainer, "last.ckpt")
        digests = rank_digests(trainer, weights_sha1(pl_module))
        self.state.extra["weights_sha1"] = digests[0]
        if len(digests) > 1:
            self.state.extra["rank_weights_sha1"] = digests
        if self.state.status == "completed" and self.state.steps_done < self.state.steps:
            self.state.status = "interrupted"
        self.write_summary(trainer)
        self._restore_signals()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self.state.steps_done = int(pl_module.g_step)
        if isinstance(exception, KeyboardInterrupt):
            self.state.status = "interrupted"
        else:
            self.state.status = "failed"
            self.state.error = f"{type(exception).__name__}: {exception}"
        with contextlib.suppress(OSError):  # e.g. the disk is still full: report what stopped the run
            self.write_summary(trainer)
        self._restore_signals()

    def state_dict(self) -> dict[str, Any]:
        return {**self.state.state_dict(), "wall_s": self.state.wall_s_before + self.session_wall_s()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.state.load_state_dict(state_dict)
        self.state.wall_s_before = float(state_dict.get("wall_s", 0.0))

    # ------------------------------------------------------------------ files
    def save(self, trainer: L.Trainer, name: str) -> None:
        """Checkpoint via a temporary file, fsync and an atomic rename (never half a checkpoint).
        A failed write (disk full...) removes the temporary file and raises RunWriteError."""
        path = self.ckpt_dir / name
        tmp = self.ckpt_dir / f".{name}.tmp"
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                commit_file(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RunWriteError(self._save_failed(path, e)) from e
        if name == "last.ckpt":
            self._last_saved = int(cast("GANModule", trainer.lightning_module).g_step)
        trainer.strategy.barrier("gan_lightning_save")

    def _save_failed(self, path: Path, error: OSError) -> str:
        sizes = [p.stat().st_size for p in self.ckpt_dir.glob("*.ckpt")] if self.ckpt_dir.is_dir() else []
        line = write_error_line(path, error)
        if sizes:
            line = line[:-1] + f", a checkpoint takes {human_bytes(max(sizes))})"
        last = self.ckpt_dir / "last.ckpt"
        if last.is_file():
            step = f" (G step {self._last_saved})" if self._last_saved is not None else ""
            kept = f"{last}{step} is intact: free space, then continue with resume=auto"
        else:
            kept = "no checkpoint was written before: free space and run again"
        return f"{line}; the run stopped with status failed; {kept}"

    def session_wall_s(self) -> float:
        return time.perf_counter() - self._t0

    def write_summary(self, trainer: L.Trainer | None) -> None:
        if trainer is not None and not trainer.is_global_zero:
            return
        s = self.state
        session = self.session_wall_s()
        steps_this_session = max(0, s.steps_done - self._start_step)
        train_s = max(1e-9, session - s.eval_s)
        # a session that trained nothing (a run stopped at its last step, started again) has no throughput or
        # device of its own: those of the sessions that trained stay
        earlier = (read_summary(s.run_dir) or {}) if not steps_this_session else {}
        throughput = round(steps_this_session / train_s, 4) if steps_this_session else earlier.get("g_iters_per_s")
        summary = {
            "exp": s.exp,
            "seed": s.seed,
            "steps": s.steps,
            "steps_done": s.steps_done,
            "status": s.status,
            "primary": s.primary,
            "final": s.final,
            "best": s.best,
            "wall_s": round(s.wall_s_before + session, 3),
            "session_wall_s": round(session, 3),
            "eval_s": round(s.eval_s, 3),
            "g_iters_per_s": throughput,
            "diverged_at": s.diverged_at,
            "error": s.error,
            "resumed_from": s.resumed_from,
            "checkpoints": sorted(p.name for p in self.ckpt_dir.glob("*.ckpt")) if self.ckpt_dir.is_dir() else [],
            "versions": versions(),
            "git_commit": git_commit(),
            "device": earlier.get("device") or device_name(trainer),
            **s.extra,
        }
        write_json(s.run_dir / "summary.json", summary)
        from gan_lightning.plots import plot_run_curves

        metric_keys = [k for k in s.final if k != "step"]
        curves = plot_run_curves(
            s.run_dir, metric_keys, title=f"{s.exp}, seed {s.seed}: {s.steps_done} G steps ({s.status})"
        )
        if trainer is not None:
            from gan_lightning.callbacks.samples import log_image_file
            from gan_lightning.wandb_utils import push_summary

            log_image_file(trainer, "curves", curves, s.steps_done)  # to wandb / TensorBoard as an image
            push_summary(trainer, summary)
