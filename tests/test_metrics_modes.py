"""Mode statistics on point sets whose answer is known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lightning.data.toy import mixture_centres
from gan_lightning.metrics import mode_statistics


def test_perfect_samples() -> None:
    c = mixture_centres("ring")
    x = c.repeat(100, 1)
    s = mode_statistics(x, c, 0.01)
    assert s == {"covered": 8.0, "high_quality": 1.0, "kl": pytest.approx(0.0, abs=1e-12)}


def test_collapsed_to_two_modes() -> None:
    c = mixture_centres("ring")
    x = torch.cat([c[:1].repeat(30, 1), c[3:4].repeat(10, 1) + 0.02, torch.zeros(60, 2)])  # 60 far from every mode
    s = mode_statistics(x, c, 0.01)
    assert s["covered"] == 2 and s["high_quality"] == pytest.approx(0.4)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert s["kl"] == pytest.approx(float((p * (p * 8).log()).sum()), rel=1e-12)


def test_threshold_is_three_std() -> None:
    c = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.149, 0.0], [0.151, 0.0]])
    s = mode_statistics(x, c, 0.05)
    assert s["high_quality"] == 0.5 and s["covered"] == 1


def test_no_high_quality_samples() -> None:
    c = mixture_centres("grid")
    s = mode_statistics(torch.full((10, 2), 1.0), c, 0.05)
    assert s["covered"] == 0 and s["high_quality"] == 0 and math.isinf(s["kl"])
