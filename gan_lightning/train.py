"""``gan-lightning train``: build data, model, callbacks and Trainer from a config, and run."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from gan_lightning.callbacks.csv_logger import MetricsCSV
from gan_lightning.callbacks.interpolation import LatentInterpolation
from gan_lightning.callbacks.metrics import GenerativeMetrics
from gan_lightning.callbacks.neighbours import NearestNeighbours
from gan_lightning.callbacks.progress import StepProgressBar
from gan_lightning.callbacks.run import RunManager, RunState
from gan_lightning.callbacks.samples import SampleGrids
from gan_lightning.callbacks.translation import TranslationMetrics
from gan_lightning.checkpoint import read_checkpoint, state_dict_sha1
from gan_lightning.config import to_yaml
from gan_lightning.data import build_datamodule
from gan_lightning.distributed import launched_as_rank_zero, may_use_gpu, parse_devices, several_devices
from gan_lightning.files import write_text
from gan_lightning.metrics.evaluator import Evaluator
from gan_lightning.models import build_model
from gan_lightning.precision import emulated_bf16_warning
from gan_lightning.resume import (
    ApplyOptimizerConfig,
    check_no_later_steps,
    check_resume,
    read_changes,
    record_changes,
    schedule_rebuilt,
    set_aside_later_best,
)
from gan_lightning.rundir import claimed_run, read_summary, worker_env


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))


# ----------------------------------------------------------------------------- trainer
def build_loggers(cfg: DictConfig, run_dir: Path, resume_step: int | None) -> list[Any]:
    """The loggers ``cfg.logger`` names; a trial started by ``wandb agent`` (WANDB_SWEEP_ID set)
    logs to wandb whatever ``logger`` says, so that its sweep gets its metric."""
    from gan_lightning.wandb_utils import wants_wandb

    names = list(cfg.logger)
    if wants_wandb(cfg) and "wandb" not in names:
        names.append("wandb")
    loggers: list[Any] = []
    for name in names:
        if name == "csv":
            loggers.append(MetricsCSV(run_dir, resume_step))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
        elif name == "wandb":
            from gan_lightning.wandb_utils import make_wandb_logger

            loggers.append(make_wandb_logger(cfg, run_dir, resuming=resume_step is not None))
    return loggers


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {"accelerator": "auto", "devices": 1}
    kw.update(dict(cfg.trainer))
    if kw.get("strategy") in ("ddp", None) and several_devices(kw):
        from lightning.pytorch.strategies import DDPStrategy

        # alternating G and D steps leave one net without gradients in each backward; buffers are
        # broadcast once per G step by GANModule.sync_buffers, not again by DDP's forward
        kw["strategy"] = DDPStrategy(find_unused_parameters=True, broadcast_buffers=False)
    return kw


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any]) -> L.Trainer:
    return L.Trainer(
        max_epochs=-1,  # the data stream is endless: the model stops after `steps` G steps
        max_steps=-1,
        callbacks=callbacks,
        logger=loggers or False,
        enable_checkpointing=True,
        enable_model_summary=False,
        enable_progress_bar=bool(cfg.log.progress),
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        deterministic=bool(cfg.perf.deterministic),
        **trainer_kwargs(cfg),
    )


# ----------------------------------------------------------------------------- train
def metrics_device(cfg: DictConfig) -> str:
    """Where this process's model will live, for what is built before the fit (extractors, reference
    features): the GPU Lightning gives this local rank (``trainer.devices=[1]``: the second GPU)."""
    if not may_use_gpu(cfg.trainer):
        return "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    devices = parse_devices(cfg.trainer)
    if isinstance(devices, list) and local_rank < len(devices):
        return f"cuda:{devices[local_rank]}"
    return f"cuda:{local_rank}"


def build_evaluator(cfg: DictConfig, datamodule: Any, verbose: bool = True) -> Evaluator:
    m = cfg.metrics
    return Evaluator(
        list(m.names),
        datamodule.info,
        datamodule,
        features=str(m.features),
        n_ref=int(m.n_ref),
        ref_split=str(m.ref_split),
        resize=str(m.resize),
        is_weights=str(m.is_weights) or None,
        ndb_bins=int(m.ndb_bins),
        recon_n=int(m.recon_n),
        recon_steps=int(m.recon_steps),
        ppl_space=str(m.ppl_space),
        ppl_n=int(m.ppl_n),
        device=metrics_device(cfg),
        verbose=verbose,
    )


def metrics_callback(
    cfg: DictConfig, datamodule: Any, state: RunState | None = None
) -> GenerativeMetrics | TranslationMetrics | None:
    """The callback that computes ``cfg.metrics`` during training (None when it names none):
    image-to-image metrics for paired/unpaired domains, the evaluator's metrics otherwise. Its
    reference statistics and classifiers are prepared here, before training starts."""
    m = cfg.metrics
    if not m.names:
        return None
    if datamodule.info.kind == "pair":
        return TranslationMetrics(
            datamodule, int(m.every), int(cfg.steps), int(m.n), state, str(m.features), metrics_device(cfg)
        )
    evaluator = build_evaluator(cfg, datamodule).prepare()
    return GenerativeMetrics(evaluator, int(m.every), int(cfg.steps), int(m.n), state, str(m.primary), bool(m.raw_too))


def train(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> TrainResult:
    """Train ``cfg`` into its run directory; ``callbacks`` (extra Lightning callbacks) run first.
    The run directory is locked for the whole run (one process per run directory)."""
    with claimed_run(cfg) as (run_dir, resume):
        return _train(cfg, run_dir, resume, callbacks)


def _train(cfg: DictConfig, run_dir: Path, resume: Path | None, callbacks: list[L.Callback] | None) -> TrainResult:
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.perf.tf32)
        torch.backends.cudnn.allow_tf32 = bool(cfg.perf.tf32)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    if hasattr(datamodule, "prepare"):
        datamodule.prepare()  # a missing dataset fails here, before anything is written
    model = build_model(cfg, datamodule.info)

    state = RunState(run_dir=run_dir, exp=str(cfg.exp), seed=int(cfg.seed), steps=int(cfg.steps))
    state.resumed_from = str(resume) if resume else None
    state.extra["run_dir"] = str(run_dir)
    state.extra["data"] = datamodule.info.name
    manager = RunManager(state, cfg.log)

    resume_step: int | None = None
    changes: dict[str, list[Any]] = {}
    rebuilt: str | None = None
    finished: dict[str, Any] | None = None  # the checkpoint's run state and digest, when nothing is left to train
    if resume is not None:
        ckpt = read_checkpoint(resume)
        changes = check_resume(cfg, ckpt, resume, model)  # refused changes fail here, before anything is written
        resume_step = int(ckpt["gan_lightning"]["g_step"])
        check_no_later_steps(run_dir, resume, resume_step)
        rebuilt = schedule_rebuilt(cfg, ckpt)
        if resume_step >= int(cfg.steps):  # report what the checkpoint holds, as the run that wrote it did
            run_state = ckpt.get("callbacks", {}).get(manager.state_key, manager.state_dict())
            finished = {"state": run_state, "weights_sha1": state_dict_sha1(ckpt["state_dict"])}
        del ckpt
        if launched_as_rank_zero():
            if finished is None:
                print(f"resuming {run_dir} from {resume} at G step {resume_step}", file=sys.stderr)
            if finished is None and (aside := set_aside_later_best(run_dir, resume_step)):
                print(
                    f"[gan_lightning] best.ckpt was from a later step than the resumed checkpoint (the run was "
                    f"killed in between): kept as {aside}",
                    file=sys.stderr,
                )
            if rebuilt:
                print(f"[gan_lightning] warning: {rebuilt}", file=sys.stderr)
    if launched_as_rank_zero() and (slow := emulated_bf16_warning(cfg)):
        print(f"[gan_lightning] warning: {slow}", file=sys.stderr)
    if launched_as_rank_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", to_yaml(cfg))  # atomic: a failed rewrite at a resume keeps the old one
        if resume is not None and resume_step is not None:
            record_changes(run_dir, resume_step, resume, changes, rebuilt)
    history = read_changes(run_dir)  # the run's config changes at its resumes, in summary.json too
    if history:
        state.extra["changes"] = history
    if finished is not None and resume_step is not None:  # nothing left to train
        manager.load_state_dict(finished["state"])
        state.steps_done = manager._start_step = resume_step
        state.extra["weights_sha1"] = finished["weights_sha1"]
        manager.write_summary(None)
        return TrainResult(run_dir, read_summary(run_dir) or {})

    all_callbacks: list[Any] = list(callbacks or [])
    if changes:  # the schedule or the optimizers may have changed (lazy_adjust follows model.penalty.every too)
        all_callbacks.append(ApplyOptimizerConfig())
    steps, log = int(cfg.steps), cfg.log
    kind = datamodule.info.kind
    metrics = metrics_callback(cfg, datamodule, state)
    if isinstance(metrics, GenerativeMetrics):
        metrics.evaluator.check_model(model)  # a metric the model cannot take fails now, not at the last step
    if metrics is not None:
        all_callbacks.append(metrics)
    if isinstance(metrics, GenerativeMetrics) and log.neighbours and kind == "image":
        evaluator = metrics.evaluator
        if "feats" in evaluator.needs:
            all_callbacks.append(NearestNeighbours(evaluator, run_dir, steps, state, n=min(2000, int(cfg.metrics.n))))
    all_callbacks.append(SampleGrids(run_dir, int(log.sample_every), steps, state))
    if log.interpolate and kind == "image":
        all_callbacks.append(
            LatentInterpolation(run_dir, int(log.sample_every), steps, int(log.interp_pairs), int(log.interp_points))
        )
    if log.progress:
        all_callbacks.append(StepProgressBar(steps))
    all_callbacks.append(manager)

    loggers = build_loggers(cfg, run_dir, resume_step)
    wandb_id = next((lg.stable_id for lg in loggers if hasattr(lg, "stable_id")), None)
    if wandb_id:
        state.extra["wandb_id"] = wandb_id
    trainer = build_trainer(cfg, all_callbacks, loggers)
    try:
        with worker_env(run_dir, resume):  # DDP workers started by fit find the run here
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True)
        if not trainer.is_global_zero:  # its status too: torchrun and srun read every process's exit code
            return TrainResult(run_dir, {"status": state.status})
        if not (run_dir / "summary.json").is_file():
            manager.write_summary(trainer)
        return TrainResult(run_dir, read_summary(run_dir) or {})
    finally:
        from gan_lightning.wandb_utils import finish_wandb

        finish_wandb(trainer, state.status)
