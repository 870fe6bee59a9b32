"""Weights & Biases logging through Lightning's WandbLogger (offline works: WANDB_MODE=offline).

- Every scalar and image is logged against ``g_step`` (generator iterations, the run's ``steps``),
  wandb's x-axis for every key (not Lightning's ``trainer/global_step``, which counts D steps too).
- The wandb run id is kept in the run directory (``wandb_id``): a resumed run (``resume=PATH|auto``)
  continues the same wandb run (``resume="allow"``).
- Under ``wandb agent`` (``WANDB_SWEEP_ID`` in the environment) a trial logs to wandb even when its
  config's ``logger`` lacks it, as the run the agent created (``WANDB_RUN_ID``).
- At the end of a run each metric's wandb summary value is its ranking value,
  :func:`gan_lightning.sweep.rank_value` of ``summary.json`` (the metric's best value over the run's
  evaluations): what ``wandb agent``'s controller reads, and what the offline sweep driver ranks by.
"""

from __future__ import annotations

import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from gan_lightning.config import to_container

SWEEP_ID_ENV = "WANDB_SWEEP_ID"  # set by `wandb agent` for each trial it starts
RUN_ID_ENV = "WANDB_RUN_ID"  # the id of the run the agent created for the trial
SWEEP_METRIC_ENV = "GAN_LIGHTNING_SWEEP_METRIC"  # the sweep's metric.name (`gan-lightning sweep` sets it)
ID_FILE = "wandb_id"  # in the run directory: the wandb run id, reused on resume
STEP_KEY = "g_step"  # wandb's x-axis: generator steps


def agent_sweep_id() -> str | None:
    """The sweep id when this process is a trial started by ``wandb agent``, else None."""
    return os.environ.get(SWEEP_ID_ENV) or None


def wants_wandb(cfg: DictConfig) -> bool:
    """``logger`` names wandb, or ``wandb agent`` started this run (a trial always reports to its sweep)."""
    return "wandb" in list(cfg.logger) or agent_sweep_id() is not None


def _is_rank_zero() -> bool:
    from gan_lightning.distributed import launched_as_rank_zero

    return launched_as_rank_zero()


def new_run_id() -> str:
    """8 characters of [a-z0-9], the form of wandb's own run ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def stable_run_id(run_dir: Path, resuming: bool) -> str:
    """The wandb run id of the run in ``run_dir``, written to ``run_dir/wandb_id`` (rank 0).

    In order: the agent's ``WANDB_RUN_ID`` for a sweep trial (wandb.init imposes it anyway); the
    stored id when the run resumes; ``WANDB_RUN_ID`` when set; a new id. A fresh start in a
    directory (no checkpoint to resume from) is a new wandb run."""
    path = Path(run_dir) / ID_FILE
    given = os.environ.get(RUN_ID_ENV) or None
    stored = None
    if resuming and path.is_file():
        stored = path.read_text().strip() or None
    if agent_sweep_id() and given:
        run_id = given
    else:
        run_id = stored or given or new_run_id()
    if _is_rank_zero() and run_id != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
    return run_id


class GStepWandbLogger(WandbLogger):
    """Lightning's WandbLogger with ``g_step`` as the x-axis of every key: ``log_metrics(values,
    step)`` (our loop passes the G step) logs ``{**values, "g_step": step}``."""

    _axis_defined = False
    stable_id: str | None = None  # the id kept in the run directory

    def define_axis(self) -> None:
        if not self._axis_defined:
            run = self.experiment
            run.define_metric(STEP_KEY)
            run.define_metric("*", step_metric=STEP_KEY, step_sync=True)
            self._axis_defined = True

    @rank_zero_only
    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        if step is None:
            super().log_metrics(metrics)
            return
        self.define_axis()
        self.experiment.log({**metrics, STEP_KEY: int(step)})


def make_wandb_logger(cfg: DictConfig, run_dir: Path, resuming: bool = False) -> Any:
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = stable_run_id(run_dir, resuming)
    logger = GStepWandbLogger(
        project=os.environ.get("WANDB_PROJECT", "gan_lightning"),
        name=f"{cfg.exp}/{run_dir.name}",
        group=os.environ.get("GAN_LIGHTNING_GROUP") or str(cfg.exp),
        save_dir=str(run_dir),
        config=to_container(cfg),
        # a sweep trial: wandb.init takes the agent's WANDB_RUN_ID itself (and ignores an id given here)
        id=None if agent_sweep_id() else run_id,
        resume="allow",
    )
    logger.stable_id = run_id  # summary.json records it (``wandb_id``)
    return logger


def wandb_loggers(trainer: Any) -> list[Any]:
    return [lg for lg in getattr(trainer, "loggers", []) if isinstance(lg, WandbLogger)]


def define_metrics(trainer: Any, directions: dict[str, bool | None]) -> None:
    """Tell wandb each metric's direction, so a run's summary holds the best value (what sweeps read)."""
    for logger in wandb_loggers(trainer):
        if isinstance(logger, GStepWandbLogger):
            logger.define_axis()
        for key, higher in directions.items():
            if higher is not None:
                # a key defined by name no longer takes the '*' glob's x-axis: name it again
                logger.experiment.define_metric(
                    key, step_metric=STEP_KEY, step_sync=True, summary="max" if higher else "min"
                )


def ranking_values(summary: dict[str, Any]) -> dict[str, float]:
    """{metric: its ranking value} for every metric of a run's summary.json that has one."""
    from gan_lightning.sweep import rank_value

    values = {key: rank_value(summary, key) for key in summary.get("best") or {}}
    return {k: v for k, v in values.items() if v is not None}


def push_summary(trainer: Any, summary: dict[str, Any]) -> None:
    """The run directory's summary.json as the wandb run summary (under 'run/...'), and each
    metric's ranking value under the metric's own key (the key a sweep's ``metric.name`` names)."""
    loggers = wandb_loggers(trainer)
    if not loggers:
        return
    values = ranking_values(summary)
    metric = os.environ.get(SWEEP_METRIC_ENV) if agent_sweep_id() else None
    if metric and metric not in values and summary.get("status") == "completed":
        print(
            f"[gan_lightning] warning: this sweep trial has no value of the sweep's metric '{metric}' "
            f"(its metrics: {', '.join(sorted(values)) or 'none'}): the sweep gets no signal from it",
            file=sys.stderr,
        )
    for logger in loggers:
        logger.experiment.summary.update({**{f"run/{k}": v for k, v in summary.items()}, **values})


def log_study_plots(sdir: Path, exp: str, images: list[Path]) -> None:
    """A study's plots as images of one wandb run (job type 'study') in the group of the study's
    runs; its id is kept in the study directory, so a rerun of the study updates the same run."""
    images = [p for p in images if Path(p).is_file()]
    if not images:
        return
    try:
        import wandb

        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "gan_lightning"),
            name=f"{exp}/{sdir.name}",
            group=sdir.name,
            job_type="study",
            dir=str(sdir),
            id=stable_run_id(sdir, resuming=True),
            resume="allow",
        )
        try:
            run.log({f"study/{p.stem}": wandb.Image(str(p)) for p in images})
        finally:
            run.finish()
    except Exception as e:  # the plots are files already; wandb is a convenience here
        print(f"[study] plots not sent to wandb: {e}", file=sys.stderr)


def finish_wandb(trainer: Any, status: str) -> None:
    """End the run's wandb runs (rank 0), so that a next run in this process starts its own and the
    run's state is final (exit code 0 for a completed run, 1 otherwise)."""
    for logger in wandb_loggers(trainer):
        run = getattr(logger, "_experiment", None)
        if run is not None and hasattr(run, "finish"):
            try:
                run.finish(exit_code=0 if status == "completed" else 1)
            except Exception as e:  # never mask the run's own outcome or error
                print(f"[gan_lightning] warning: wandb.finish failed: {e}", file=sys.stderr)
            logger._experiment = None
