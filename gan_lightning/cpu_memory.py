"""Host memory: glibc malloc settings for large, short-lived tensors (the Inception trunk's activations),
and the check that a command's samples fit in memory.

With glibc's defaults every allocation above the mmap threshold (at most 32 MiB) is mapped fresh
from the kernel and unmapped when freed, so each call of a 299x299 network pays page faults for
all of its activations again: ~40 % of a CPU FID evaluation's time was spent in the kernel
(measured 2026-11-28, ``benchmarks/results/inception_cpu.json``).
"""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path
from typing import Any

import numpy as np

from gan_lightning.registry import ConfigError

# glibc's malloc.h parameter numbers
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_UP_TO = 1 << 30  # allocations up to 1 GiB come from the heap
KEEP_FREE_UP_TO = (1 << 31) - 1  # and up to ~2 GiB freed at its top stays there (mallopt takes an int)
_in_force: bool | None = None


def reuse_freed_memory() -> bool:
    """Once per process, on glibc: serve allocations up to 1 GiB from the heap and keep freed
    memory in it for the next allocation (``mallopt``), instead of a fresh mapping per tensor.
    Returns whether the settings are in force. The cost: memory the process freed stays its own
    (its peak resident size) until it exits."""
    global _in_force
    if _in_force is None:
        _in_force = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            # the trim threshold first: above the mmap threshold, so freed heap is not handed back at once
            _in_force = mallopt(M_TRIM_THRESHOLD, KEEP_FREE_UP_TO) == 1 and mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO) == 1
    return _in_force


def available_memory() -> int | None:
    """Bytes the kernel reckons can be allocated without swapping (Linux's MemAvailable); None elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_in_memory(n: int, model: Any) -> None:
    """Refuse, before any work, an ``--n`` whose codes and samples (twice: the samples and a copy, for a
    file or the features) of ``model`` cannot fit in the memory available now. Image-to-image models
    translate test images, so their test split bounds ``n``: not checked here."""
    if model.info.kind == "pair":
        return
    shape = tuple(model.info.shape)
    need = 4 * n * (model.z_dim + 2 * int(np.prod(shape)))
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"bad value for '--n': {n} samples of shape {shape} need ~{need / 1e9:.1f} GB of memory and "
            f"{free / 1e9:.1f} GB is available; use a smaller --n"
        )
