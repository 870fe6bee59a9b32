"""Reductions over the ranks of a torch.distributed run, for state that every rank must hold alike
(running means and counters that follow the training batches).

Each is the identity of a single process: without an initialised process group the local values
are the global ones. Every rank must call them at the same point of its step (they are collectives).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from gan_lightning.registry import ConfigError

# the variables by which launchers tell a process its rank: Lightning's DDP launcher (LOCAL_RANK, NODE_RANK),
# torchrun (RANK, LOCAL_RANK, GROUP_RANK) and srun (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def launched_as_rank_zero() -> bool:
    """Whether this process is rank 0 of its run by its launcher's environment (before any process group
    exists): every rank variable that is set is 0. A second node's first process has LOCAL_RANK 0 but not RANK 0."""
    return all(os.environ.get(k, "0") in ("", "0") for k in RANK_VARIABLES)


def launcher_process_count() -> int:
    """How many processes an outside launcher (torchrun: WORLD_SIZE; srun: SLURM_NTASKS) started; 1 otherwise."""
    return max(int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("SLURM_NTASKS", "1") or 1))


def launcher_run_id() -> str | None:
    """An id every process of an outside launcher's job shares (torchrun's rendezvous id, SLURM's job and step),
    or None."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return run_id
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        step = os.environ.get("SLURM_STEP_ID")
        return f"{job}.{step}" if step else job
    return None


def mean_over_ranks(values: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Scalar ``values`` averaged over the ranks (every rank must pass the same keys): the whole batch's figures
    where each rank holds its share's mean. A single process: the values as floats."""
    keys = list(values)
    if not keys:
        return {}
    device = next((v.device for v in values.values() if isinstance(v, Tensor)), torch.device("cpu"))
    stacked = torch.stack([torch.as_tensor(values[k]).detach().float().reshape(()).to(device) for k in keys])
    if distributed():
        sum_over_ranks_(stacked)
        stacked /= torch.distributed.get_world_size()
    return dict(zip(keys, stacked.tolist()))


def distributed() -> bool:
    """Whether a torch.distributed process group is initialised (a DDP run)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def parse_devices(trainer: Mapping[str, Any]) -> int | list[int]:
    """``trainer.devices`` as Lightning reads it: a count (-1 for "auto": every visible GPU) or a
    list of device indices ([0, 1] or "0,1"). Anything else is a ConfigError."""
    devices = trainer.get("devices", 1)
    try:
        if isinstance(devices, str):
            text = devices.strip().strip("[]")
            if text in ("auto", "-1"):
                return -1
            if "," in text:
                return [int(d) for d in text.split(",") if d.strip()]
            if text.isdigit():
                return int(text)
        elif isinstance(devices, int) and not isinstance(devices, bool):
            return devices
        elif isinstance(devices, Sequence):
            return [int(d) for d in devices]
    except (TypeError, ValueError):
        pass
    raise ConfigError(
        f"bad value for 'trainer.devices': {devices!r}; give a count (1, 2), a list of indices ([0, 1]), "
        "'0,1', 'auto' or -1"
    )


def may_use_gpu(trainer: Mapping[str, Any]) -> bool:
    """Whether ``trainer.accelerator`` lets Lightning pick a GPU and one is visible."""
    return str(trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def process_count(trainer: Mapping[str, Any]) -> int:
    """How many processes Lightning would start for these ``trainer.*`` settings: devices x nodes ("auto"/-1:
    the visible GPUs where a GPU is used, else 1)."""
    devices = parse_devices(trainer)
    if isinstance(devices, list):
        per_node = len(devices)
    elif devices == -1:
        per_node = max(1, torch.cuda.device_count()) if may_use_gpu(trainer) else 1
    else:
        per_node = devices
    return max(1, per_node) * max(1, int(trainer.get("num_nodes", 1)))


def several_devices(trainer: Mapping[str, Any]) -> bool:
    """Whether Lightning would run these ``trainer.*`` settings on more than one device (``process_count``)."""
    return process_count(trainer) > 1


def sum_over_ranks_(t: Tensor) -> Tensor:
    """``t`` replaced in place by its sum over the ranks (unchanged in a single process); returns ``t``."""
    if distributed():
        torch.distributed.all_reduce(t)
    return t


def global_mean(values: Tensor) -> Tensor:
    """The mean over dim 0 of every rank's ``values`` (N_r, ...) together: the per-rank sums and row
    counts are summed over the ranks, so ranks with different N_r weigh by their rows. Float maths in
    ``values``' dtype (at least float32); the result has shape ``values.shape[1:]``. No gradient."""
    v = values.detach()
    dtype = torch.promote_types(v.dtype, torch.float32)
    flat = v.to(dtype).reshape(v.shape[0], -1)
    total = torch.cat([flat.sum(0), flat.new_full((1,), float(v.shape[0]))])
    sum_over_ranks_(total)
    return (total[:-1] / total[-1]).reshape(v.shape[1:])
