"""perf.fast on a CUDA GPU: the D and G steps are captured as CUDA graphs and the replayed training
tracks the eager one. Skipped where there is no GPU (CI has none); on a GPU: ``pytest tests/test_cuda.py``.

On a GPU the two paths cannot agree bit for bit: the fast path's optimizers are the capturable
variants (their step count and learning rate are device tensors), whose kernels round otherwise.
What must hold is that both graphs were captured and replayed, and that after training the paths
differ by far less than training moved the weights. Set GAN_LIGHTNING_RECORD=DIR to write the
measured differences to DIR/fast_path_cuda.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from gan_lightning.fast import WARMUP_STEPS
from tests.helpers import run
from tests.test_fast_path import CASES
from tests.test_resume import SignalAt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU_CASES = {
    **CASES,
    "wgan_gp_bf16": ["exp=gmm_ring", "model=wgan_gp", "trainer.precision=bf16-mixed"],
    "biggan": ["exp=biggan_fashion"],  # SN power iterations, conditional BN, attention, projection, ortho
}
MEASURED: dict[str, dict[str, Any]] = {}


class Probe(L.Callback):
    """The weights before and after training, and whether each replayable step holds a graph."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.end: dict[str, torch.Tensor] = {}
        self.captured: list[bool] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.start = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.end = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        self.captured = [step.graph is not None for step in (getattr(pl_module, "_fast", None) or ())]


def largest_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference over the floating-point tensors (counters left out)."""
    return max(float((b[k] - a[k]).abs().max()) for k in a if a[k].is_floating_point() and a[k].numel())


@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_fast_path_captures_graphs_and_tracks_the_eager_path(case: str, mnist_root: Path) -> None:
    steps = WARMUP_STEPS + 6  # capture at step WARMUP_STEPS + 1, then five replays
    data = [f"data.data_dir={mnist_root}", "data.download=false"] if case == "biggan" else []
    common = [*GPU_CASES[case], *data, f"steps={steps}", "metrics.names=[]", "log.interpolate=false"]
    common += ["log.neighbours=false", "trainer.accelerator=gpu"]
    eager_probe, fast_probe = Probe(), Probe()
    eager = run(*common, "out=eager", extra_callbacks=[eager_probe])
    fast = run(*common, "perf.fast=true", "out=fast", extra_callbacks=[fast_probe])
    assert eager.status == fast.status == "completed"
    assert eager_probe.captured == [] and fast_probe.captured == [True, True]  # the D step and the G step
    moved = largest_change(eager_probe.start, eager_probe.end)
    apart = largest_change(eager_probe.end, fast_probe.end)
    MEASURED[case] = {"steps": steps, "max_abs_update": moved, "max_abs_eager_vs_fast": apart}
    record()
    assert moved > 0
    assert apart <= 0.01 * moved, f"{case}: eager and fast differ by {apart:.3g}; training moved weights {moved:.3g}"


def test_fast_path_resumes_on_the_gpu_and_reaches_the_uninterrupted_weights() -> None:
    """Issue 10 item 8: after a resume Lightning restores the optimizer state with CPU tensors; the
    capturable optimizer's lr and step must be back on the GPU before the graphs are captured."""
    common = ["exp=gmm_ring", "model=wgan_gp", "metrics.names=[]", "trainer.accelerator=gpu", "perf.fast=true"]
    common += ["optim.schedule=linear_decay", "optim.decay_start=0.2"]
    whole_probe, resumed_probe = Probe(), Probe()
    whole = run(*common, "steps=14", "out=whole", extra_callbacks=[whole_probe])
    first = run(*common, "steps=14", "out=part", extra_callbacks=[SignalAt(7)])
    resumed = run(*common, "steps=14", "out=part", "resume=auto", extra_callbacks=[resumed_probe])
    assert first.status == "interrupted" and whole.status == resumed.status == "completed"
    assert resumed_probe.captured == [True, True]
    moved = largest_change(whole_probe.start, whole_probe.end)
    apart = largest_change(whole_probe.end, resumed_probe.end)
    MEASURED["resume"] = {"steps": 14, "resumed_at": 7, "max_abs_update": moved, "max_abs_whole_vs_resumed": apart}
    record()
    assert apart <= 0.01 * moved


def record() -> None:
    target = os.environ.get("GAN_LIGHTNING_RECORD")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": MEASURED}
        (Path(target) / "fast_path_cuda.json").write_text(json.dumps(info, indent=2) + "\n")
