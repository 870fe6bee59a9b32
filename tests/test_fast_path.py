"""perf.fast on CPU: the static-buffer, taped-noise path must train exactly like the default path.

On a GPU the same path is captured as CUDA graphs; what a CPU can check is its logic: static
inputs refilled each step, every random draw taped and redrawn in the same order, n_critic D
steps then one G step, EMA and schedules outside the replayed units."""

from __future__ import annotations

import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.fast import WARMUP_STEPS, NoiseTape
from gan_lightning.models.noise import NoiseSource
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights

CASES = {
    "wgan_gp": ["exp=gmm_ring", "model=wgan_gp"],  # penalty (double backward), n_critic 5
    "wgan": ["exp=gmm_ring", "model=wgan", "optim.lr_d=1e-3"],  # clipping, RMSprop
    "dcgan_ema_decay": [  # BatchNorm in G, EMA, a linearly decaying lr (tensor lr on a GPU)
        "exp=dcgan",
        "data=synthetic",
        "data.image_size=16",
        "data.n=256",
        "model.ema.decay=0.9",
        "optim.schedule=linear_decay",
        "optim.decay_start=0.2",
    ],
    "sngan_dragan": ["exp=gmm_ring", "model=sngan", "model.penalty.name=dragan", "model.penalty.weight=1"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_trains_bitwise_like_the_default_path(case: str) -> None:
    steps = WARMUP_STEPS + 4  # warm-up steps run eagerly, the rest through the static buffers
    common = [*CASES[case], f"steps={steps}", "metrics.names=[]", "log.interpolate=false", "log.neighbours=false"]
    eager = run(*common, "out=eager")
    fast = run(*common, "perf.fast=true", "out=fast")
    assert eager.status == fast.status == "completed"
    assert_bitwise_equal(weights(eager.run_dir), weights(fast.run_dir))
    assert eager.summary["final"] == fast.summary["final"]


def test_noise_tape_replays_the_same_stream() -> None:
    reference, taped = NoiseSource(7), NoiseSource(7)
    tape = NoiseTape(taped)
    tape.start_recording()
    first = [tape.normal(4, 3), tape.uniform(4, 1)]
    expected = [reference.normal(4, 3), reference.uniform(4, 1)]
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
    for _ in range(2):  # later steps: drawn up front into static tensors, read back in order
        tape.refill()
        buffers = list(tape.buffers)
        got = [tape.normal(4, 3), tape.uniform(4, 1)]
        assert all(g is b for g, b in zip(got, buffers))
        assert torch.equal(got[0], reference.normal(4, 3)) and torch.equal(got[1], reference.uniform(4, 1))
    tape.refill()
    with pytest.raises(RuntimeError, match="tape"):
        tape.uniform(4, 3)  # a draw the recorded step did not make


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["exp=pix2pix_edges"], "does not cover"),
        (["exp=gmm_ring", "optim.name=sgd"], "adam or rmsprop"),
        (["exp=gmm_ring", "trainer.devices=2"], "one device"),
    ],
)
def test_fast_path_refuses_what_it_does_not_cover(args: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config([*args, "perf.fast=true"])
