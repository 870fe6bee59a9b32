"""``perf.fast=true``: the D step and the G step as replayable units with static inputs.

At GAN sizes a GPU waits on Python (the work is launch-bound), so the fast path captures each
whole D step (critic forward on real and fake, loss, gradient penalty with its double backward,
backward, optimizer step, clipping) and each G step once as a CUDA graph and replays them. What
changes per step lives in static tensors that are refilled before each replay: the real batch,
and every random draw the step makes (z, the penalty's interpolation weights), taped while the
step runs eagerly during warm-up and then drawn from the same per-rank noise generator in the
same order. On a CPU nothing is captured: the same static-buffer path runs eagerly, so CPU tests
check its logic (the weights equal the default path's bit for bit).

Limits: one device (no DDP), models whose ``fast_path`` says their steps are the shared ones
(the GAN family, conditional variants included), capturable optimizers (Adam, AdamW, RMSprop;
their learning rate is a tensor so schedules still apply), no 16-bit loss scaling.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

WARMUP_STEPS = 3  # eager steps before capture (cuDNN/cuBLAS workspaces, autograd streams, lazy state)


class NoiseTape:
    """Stands in for a NoiseSource inside a replayable step.

    Recording: draws from the real source and notes each call (kind, arguments). Playing: returns
    static tensors that ``refill`` filled beforehand with the same calls, in the same order, from
    the real source, so the random stream is the one the eager step would have used."""

    def __init__(self, source: Any):
        self.source = source
        self.recording = True
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.buffers: list[Tensor] = []
        self.pos = 0

    def __getattr__(self, kind: str) -> Callable[..., Tensor]:
        """Every draw the live source offers (its ``DRAWS``), taped."""
        if kind in getattr(type(self.__dict__.get("source")), "DRAWS", ()):
            return lambda *args: self._draw(kind, args)
        raise AttributeError(f"the noise tape has no draw '{kind}'")

    def _draw(self, kind: str, args: tuple[int, ...]) -> Tensor:
        if self.recording:
            self.calls.append((kind, args))
            return getattr(self.source, kind)(*args)
        if self.pos >= len(self.buffers) or self.calls[self.pos] != (kind, args):
            raise RuntimeError(f"perf.fast: the step drew {kind}{args} where its tape has no such draw")
        out = self.buffers[self.pos]
        self.pos += 1
        return out

    def start_recording(self) -> None:
        self.recording, self.calls = True, []

    def refill(self) -> None:
        """Draw this step's noise into the static tensors (allocating them the first time)."""
        fresh = [getattr(self.source, kind)(*args) for kind, args in self.calls]
        if not self.buffers:
            self.buffers = fresh
        else:
            for buf, new in zip(self.buffers, fresh):
                buf.copy_(new)
        self.recording, self.pos = False, 0


class ReplayableStep:
    """``fn(noise, *inputs) -> {name: tensor}`` run eagerly for the warm-up steps, then (on CUDA)
    captured once and replayed with its inputs and noise copied into static tensors. ``noise`` is
    this step's own tape over ``source``."""

    def __init__(self, fn: Callable[..., dict[str, Tensor]], source: Any, device: torch.device, autocast: Any):
        self.fn, self.tape, self.device = fn, NoiseTape(source), device
        self.graphs = device.type == "cuda"
        self.autocast = autocast or nullcontext
        self.calls = 0
        self.static_inputs: list[Tensor] | None = None
        self.static_out: dict[str, Tensor] | None = None
        self.graph: Any = None

    def __call__(self, *inputs: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if self.calls <= WARMUP_STEPS:
            self.tape.start_recording()
            if not self.graphs:
                return self.fn(self.tape, *inputs)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), self.autocast():
                out = self.fn(self.tape, *inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.static_inputs is None:
            self.static_inputs = [x.detach().clone() for x in inputs]
        else:
            for static, x in zip(self.static_inputs, inputs):
                static.copy_(x)
        self.tape.refill()
        if not self.graphs:  # CPU: the same static-buffer path, eagerly
            return self.fn(self.tape, *self.static_inputs)
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph), self.autocast():
                self.static_out = self.fn(self.tape, *self.static_inputs)
            self.tape.pos = 0
        self.graph.replay()
        assert self.static_out is not None
        return self.static_out


def optimizer_tensors_to_(optimizer: torch.optim.Optimizer, device: torch.device, capturable: bool = False) -> None:
    """Move the tensor hyperparameters of ``optimizer``'s groups (a capturable optimizer's ``lr``
    and the scheduler's ``initial_lr``) to ``device`` in place of the CPU copies a checkpoint
    restore leaves; the scheduler then updates the tensor the captured step reads. ``capturable``:
    also make groups restored from a checkpoint of the default path capturable (the flag on, the
    lr a tensor, the step counts on ``device``), as the graphs need."""
    for group in optimizer.param_groups:
        if capturable:
            group["capturable"] = True
            if not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(float(group["lr"]))
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                if isinstance(state.get("step"), Tensor):
                    state["step"] = state["step"].to(device)
        for key in ("lr", "initial_lr"):
            value = group.get(key)
            if isinstance(value, Tensor) and value.device != device:
                group[key] = value.to(device)


def autocast_for(precision: str, device: torch.device) -> Any:
    """bf16 autocast without its weight-cast cache (a cache does not survive graph capture)."""
    if device.type == "cuda" and str(precision).startswith("bf16"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    return None


def capturable_optimizer_kwargs(name: str, lr: float, device: torch.device) -> dict[str, Any]:
    """Optimizer arguments for graph capture: capturable state and a tensor learning rate."""
    if device.type != "cuda":
        return {}
    if name not in ("adam", "adamw", "rmsprop"):
        raise ValueError(f"perf.fast needs a capturable optimizer (adam, adamw, rmsprop), not '{name}'")
    return {"capturable": True, "lr": torch.tensor(float(lr), device=device)}
