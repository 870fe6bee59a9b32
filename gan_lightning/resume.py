"""Resume never changes a run silently.

The checkpoint's config is the run's config. ``steps`` (to extend; a linear decay rebuilt for it is
warned about and recorded), ``log.*``, ``metrics.*`` and ``logger`` may change on resume; any other
difference is an error listing each key with both values, unless ``resume_override=true``: then the
new values take effect (the optimizers' and schedulers' settings included, see
``ApplyOptimizerConfig``) and every resume that changed something is recorded in the run
directory's ``changes.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.checkpoint import CheckpointError, check_fits
from gan_lightning.config import from_container, to_container
from gan_lightning.optim import extension_conflict
from gan_lightning.registry import ConfigError

# keys (or sections, ending in '.') that may differ from the checkpoint's config
MAY_CHANGE = ("steps", "logger", "log.", "metrics.")
INVOCATION = ("out", "resume", "resume_override")  # how this process was started: not compared
CHANGES_FILE = "changes.jsonl"
ABSENT = "(absent)"


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the leaves of a nested dict (lists and empty dicts are leaves)."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """{key: [old value, new value]} for every key whose value differs (ABSENT on the side that lacks it)."""
    a, b = ({k: v for k, v in flatten(c).items() if k not in INVOCATION} for c in (old, new))
    keys = [*a, *(k for k in b if k not in a)]
    return {k: [a.get(k, ABSENT), b.get(k, ABSENT)] for k in keys if a.get(k, ABSENT) != b.get(k, ABSENT)}


def may_change(key: str, allowed: tuple[str, ...] = MAY_CHANGE) -> bool:
    """Whether ``key`` is one of ``allowed`` (keys, or sections ending in '.'): by default, whether it may differ
    from the checkpoint's config without ``resume_override``."""
    return any(key == m or (m.endswith(".") and key.startswith(m)) for m in allowed)


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _listing(changes: dict[str, list[Any]]) -> str:
    return "\n".join(f"  {k}: {_show(old)} in the checkpoint, {_show(new)} now" for k, (old, new) in changes.items())


def stored_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's config, through ``through_schema``."""
    return through_schema(ckpt["gan_lightning"]["config"])


def through_schema(stored: dict[str, Any]) -> dict[str, Any]:
    """A config a run stored (checkpoint, config.yaml) through the typed schema, so keys added to the code since
    it was written get their defaults (as stored when the schema no longer takes it)."""
    try:
        return to_container(from_container(stored))
    except ConfigError:
        return dict(stored)


def check_resume(cfg: DictConfig, ckpt: dict[str, Any], path: Path, model: torch.nn.Module) -> dict[str, list[Any]]:
    """The config changes of resuming ``ckpt`` (read from ``path``) into ``model`` built from
    ``cfg``. Raises ConfigError for a ``steps`` below the checkpoint's step and, without
    ``resume_override``, for a change of anything but steps, logging, metrics and loggers;
    CheckpointError when the weights do not fit ``model`` (with the differing keys)."""
    step = int(ckpt["gan_lightning"]["g_step"])
    if int(cfg.steps) < step:
        raise ConfigError(
            f"steps={cfg.steps} is below the checkpoint's G step {step} ({path}): a run cannot be shortened; "
            f"pass steps={step} to report it as it is, or more steps to extend it"
        )
    changes = config_changes(stored_config(ckpt), to_container(cfg))
    forbidden = {k: v for k, v in changes.items() if not may_change(k)}
    try:
        check_fits(path, ckpt, model)
    except CheckpointError as e:
        if forbidden:
            raise CheckpointError(f"{e}. The config differs from the checkpoint's:\n{_listing(forbidden)}") from None
        raise
    if "optim.name" in changes:  # the checkpoint's optimizer state is another optimizer's (Adam's moments...)
        old, new = changes["optim.name"]
        raise ConfigError(
            f"resuming {path} with optim.name={new} (the run trained with {old}): the checkpoint's optimizer state "
            "cannot be loaded into another optimizer, even with resume_override; start a new run (out=DIR)"
        )
    if forbidden and not cfg.get("resume_override", False):
        raise ConfigError(
            f"resuming {path} would change the run's config (the checkpoint's config is the run's config):\n"
            f"{_listing(forbidden)}\nOnly steps, log.*, metrics.* and logger may change on resume. Drop these "
            f"overrides, pass resume_override=true to apply them (recorded in {CHANGES_FILE}), or start a new "
            "run (out=DIR)"
        )
    return changes


def checkpoint_state(path: Path) -> dict[str, int | None]:
    """{"g_step", "steps"} of a checkpoint (its G step and its run's ``steps``), read with mmap (the tensors are
    not read); None for what an unreadable file does not give."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["gan_lightning"]
        g_step = int(state["g_step"])
    except Exception:
        return {"g_step": None, "steps": None}
    try:
        return {"g_step": g_step, "steps": int(state["config"]["steps"])}
    except Exception:
        return {"g_step": g_step, "steps": None}


def check_no_later_steps(run_dir: Path, resume: Path, resume_step: int) -> None:
    """Refuse to resume a run directory from a checkpoint older than the directory's ``last.ckpt``: the later
    steps' rows of metrics.csv and that checkpoint would be overwritten. ``out=`` another directory branches."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file() or last.resolve() == resume.resolve():
        return
    later = checkpoint_state(last)["g_step"]
    if later is None:
        return  # an unreadable last.ckpt holds nothing to keep
    if later > resume_step:
        raise ConfigError(
            f"{resume} is at G step {resume_step}, but the run directory {run_dir} holds checkpoints/last.ckpt at "
            f"step {later}: resuming there would write over its later steps (metrics.csv rows, last.ckpt). "
            f"To branch from step {resume_step}, add out=DIR (a new run directory); to continue the run, resume=auto"
        )


def set_aside_later_best(run_dir: Path, resume_step: int) -> Path | None:
    """Rename ``best.ckpt`` when it is from a step after ``resume_step`` (the run was killed between saving it
    and its next last.ckpt): its weights are of a trajectory the resumed run abandons. Kept, renamed to
    ``best.ckpt.abandoned_step_N``; returns the new path."""
    best = run_dir / "checkpoints" / "best.ckpt"
    if not best.is_file():
        return None
    step = checkpoint_state(best)["g_step"]
    if step is None or step <= resume_step:
        return None
    aside = best.with_name(f"best.ckpt.abandoned_step_{step}")
    best.replace(aside)
    return aside


def schedule_rebuilt(cfg: DictConfig, ckpt: dict[str, Any]) -> str | None:
    """Why resuming ``ckpt`` with ``cfg``'s ``steps`` is not a run of that many steps, or None: a linear decay
    rebuilt for the new ``steps`` gives steps already done another lr (the lr jumps at the resumed step)."""
    stored, step = stored_config(ckpt), int(ckpt["gan_lightning"]["g_step"])
    schedule = {k: cfg.optim[k] for k in ("schedule", "decay_start")}
    if {k: stored.get("optim", {}).get(k) for k in schedule} != schedule:
        return None  # another schedule altogether: an overridden change, recorded as such
    why = extension_conflict(step, int(stored["steps"]), int(cfg.steps), cfg.optim)
    if why is None:
        return None
    return (
        f"{why}. The run goes on with the {cfg.steps}-step schedule from here, so it is neither the "
        f"{stored['steps']}- nor the {cfg.steps}-step run (recorded as 'lr_schedule' in {CHANGES_FILE}); for "
        f"the {cfg.steps}-step run, train it anew (out=DIR)"
    )


def record_changes(
    run_dir: Path, step: int, resumed_from: Path, changes: dict[str, list[Any]], lr_schedule: str | None = None
) -> None:
    """Append what this resume changed at ``step`` to ``changes.jsonl`` (nothing when nothing did), with
    ``lr_schedule``, the ``schedule_rebuilt`` reason, when there is one."""
    if not changes:
        return
    record = {
        "step": step,
        "resumed_from": str(resumed_from),
        "changes": changes,
        "overridden": sorted(k for k in changes if not may_change(k)),
        **({"lr_schedule": lr_schedule} if lr_schedule else {}),
    }
    with open(run_dir / CHANGES_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_changes(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of ``changes.jsonl``, oldest first."""
    path = run_dir / CHANGES_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _set(container: Any, key: Any, value: float) -> None:
    """container[key] = value, in place for a tensor (a capturable optimizer's lr)."""
    if isinstance(container[key], Tensor):
        container[key].fill_(value)
    else:
        container[key] = value


def _factor(scheduler: Any, i: int, group: dict[str, Any]) -> float:
    """The schedule's multiplier of the base lr of param group ``i`` at its current step."""
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas and callable(lambdas[i]):
        return float(lambdas[i](scheduler.last_epoch))
    base = float(scheduler.base_lrs[i])
    return float(group["lr"]) / base if base else 1.0


class ApplyOptimizerConfig(L.Callback):
    """Puts the config's optimizer settings into resumed optimizers and schedulers: Lightning
    restores their param groups and base lrs from the checkpoint, which would keep the old
    values. Captured when the optimizers are built (``on_fit_start``, before the restore) and
    applied in ``on_train_start`` (after it): the lr becomes the new base lr times the schedule's
    factor at the resumed step."""

    def __init__(self) -> None:
        self.fresh: list[list[dict[str, Any]]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fresh = [
            [
                {
                    k: float(v) if isinstance(v, Tensor) else v
                    for k, v in g.items()
                    if k != "params" and (k in ("lr", "initial_lr") or not isinstance(v, Tensor))
                }
                for g in opt.param_groups
            ]
            for opt in trainer.optimizers
        ]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        schedulers = {id(c.scheduler.optimizer): c.scheduler for c in trainer.lr_scheduler_configs}
        for opt, fresh in zip(trainer.optimizers, self.fresh):
            scheduler = schedulers.get(id(opt))
            for i, (group, new) in enumerate(zip(opt.param_groups, fresh)):
                base = float(new.get("initial_lr", new["lr"]))
                factor = _factor(scheduler, i, group) if scheduler is not None else 1.0
                group.update({k: v for k, v in new.items() if k not in ("lr", "initial_lr") and k in group})
                if scheduler is not None:
                    _set(scheduler.base_lrs, i, base)
                if "initial_lr" in group:
                    _set(group, "initial_lr", base)
                _set(group, "lr", base * factor)
