"""Helpers to run tiny trainings inside tests."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from gan_lightning.config import load_config
from gan_lightning.train import TrainResult, train
from tests.conftest import tiny_for


def run(*args: str, extra_callbacks: list[L.Callback] | None = None, tiny: bool = True) -> TrainResult:
    """Train with TINY settings plus ``args`` (key=value); optional extra callbacks go first."""
    return train(load_config([*(tiny_for(list(args)) if tiny else []), *args]), callbacks=extra_callbacks)


def weights(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return torch.load(Path(run_dir) / "checkpoints" / name, weights_only=True)["state_dict"]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"
