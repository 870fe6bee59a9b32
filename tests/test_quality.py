"""Slow: the shipped toy experiments reach their quality bars (2,500 samples, 3-std protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_lightning.metrics import mode_statistics
from gan_lightning.sample import sample_data_space
from tests.helpers import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("exp", "min_modes", "min_hq"), [("gmm_ring", 8, 0.90), ("gmm_grid", 24, 0.80)])
def test_toy_experiment_covers_the_modes(exp: str, min_modes: int, min_hq: float) -> None:
    result = run(f"exp={exp}", "out=q", "log.progress=false", tiny=False)
    assert result.status == "completed"
    final = result.summary["final"]
    assert final["modes/covered"] >= min_modes and final["modes/high_quality"] >= min_hq, final
    # the same figures again, independently, from `sample`'s output of the final checkpoint
    x, model = sample_data_space(result.run_dir / "checkpoints" / "last.ckpt", 2500, seed=99)
    stats = mode_statistics(x, torch.tensor(model.info.modes), model.info.mode_std)
    assert stats["covered"] >= min_modes and stats["high_quality"] >= min_hq, stats
    assert np.isfinite(stats["kl"]) and stats["kl"] < 0.1
