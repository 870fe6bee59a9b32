"""The trainer's precision: one reader of ``trainer.precision``, and the project's own value
``bf16-mixed-if-native``, resolved when the config is loaded (config.yaml keeps the result, so a
resumed run keeps the precision it started with).

bf16 autocast pays only where the hardware computes bf16: measured on 2 CPU cores (2026-11-28,
the quickstart's DCGAN 28x28 D and G steps at batch 32), AVX512-BF16 made them 1.8x faster than
float32 (the whole training loop with its EMA and data: 1.4x), while oneDNN's emulation without those
instructions made them 2x slower (AVX-512) to 15x slower (AVX2).
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_PRECISION = "32-true"
IF_NATIVE = "bf16-mixed-if-native"  # bf16-mixed where the device computes bf16 natively, else 32-true


def precision_of(cfg: Any) -> str:
    """``cfg.trainer.precision`` as a string (Lightning's default where unset)."""
    return str(cfg.trainer.get("precision", DEFAULT_PRECISION))


def is_16bit_mixed(cfg: Any) -> bool:
    """fp16 precision (``16-mixed`` and the other ``16`` values), whose loss scaling the penalty's double
    backward, the unrolled D steps and the fast path's own optimizer steps do not go through."""
    return precision_of(cfg).startswith("16")


def cpu_computes_bf16() -> bool:
    """The CPU has AVX512-BF16 or AMX, the instructions oneDNN's bf16 kernels need to be fast."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(bool(check()) for check in checks if check is not None)


def runs_on_cuda(accelerator: Any) -> bool:
    """Whether Lightning's ``accelerator`` lands on a CUDA GPU here."""
    name = str(accelerator)
    return name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available())


def computes_bf16(accelerator: Any) -> bool:
    """The device ``accelerator`` picks computes bf16 natively (a GPU from Ampere on, or the CPU above)."""
    if runs_on_cuda(accelerator):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return str(accelerator) in ("cpu", "auto") and cpu_computes_bf16()


def resolve_precision(trainer: Any) -> None:
    """Replace ``bf16-mixed-if-native`` in the trainer section by what it means on this machine."""
    if trainer.get("precision") == IF_NATIVE:
        native = computes_bf16(trainer.get("accelerator", "auto"))
        trainer.precision = "bf16-mixed" if native else DEFAULT_PRECISION


def emulated_bf16_warning(cfg: Any) -> str | None:
    """A warning for bf16 asked of a CPU that would emulate it (slower than float32), else None."""
    wanted = precision_of(cfg)
    if not wanted.startswith("bf16") or runs_on_cuda(cfg.trainer.get("accelerator", "auto")) or cpu_computes_bf16():
        return None
    return (
        f"trainer.precision={wanted} on a CPU without AVX512-BF16 or AMX: bf16 is emulated there, 2x to 15x slower "
        f"than {DEFAULT_PRECISION}; use trainer.precision={DEFAULT_PRECISION} (or {IF_NATIVE}, which picks for you)"
    )
