"""Stacked MNIST-family data: each channel an image of the base set, the label its class triple;
the 'stacked' metric against known mode histograms and on real stacks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.base import to_model_space
from gan_lightning.metrics.modes import stacked_mode_statistics


def one_hot_triples(triples: list[tuple[int, int, int]]) -> torch.Tensor:
    return F.one_hot(torch.tensor(triples), 10).double()  # (N, 3, 10)


def test_stacked_statistics_count_triples_and_the_kl_to_the_product_distribution() -> None:
    uniform = torch.ones(10)
    every = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    s = stacked_mode_statistics(one_hot_triples(every * 2), uniform)
    assert s["modes"] == 1000 and s["kl"] == pytest.approx(0.0, abs=1e-12)
    s = stacked_mode_statistics(one_hot_triples([(1, 2, 3)] * 5), uniform)
    assert s["modes"] == 1 and s["kl"] == pytest.approx(math.log(1000), rel=1e-12)
    # skewed data classes: the data's mode probability is the product of the class frequencies
    hist = torch.tensor([2.0] + [1.0] * 9)
    s = stacked_mode_statistics(one_hot_triples([(0, 0, 0), (1, 1, 1)]), hist)
    q000, q111 = (2 / 11) ** 3, (1 / 11) ** 3
    assert s["kl"] == pytest.approx(0.5 * math.log(0.5 / q000) + 0.5 * math.log(0.5 / q111), rel=1e-12)


def test_stacked_batches_stack_three_base_images_and_label_their_triple(mnist_root: Path) -> None:
    cfg = load_config(["exp=stacked_mnist", f"data.data_dir={mnist_root}", "data.download=false"])
    dm = build_datamodule(cfg)
    batch = dm.global_batch(3, 16)
    assert batch.x.shape == (16, 3, 32, 32) and batch.x.min() >= -1 and batch.x.max() <= 1
    base_images, base_labels = dm.channel_datamodule.split(train=True)
    flat = to_model_space(base_images).flatten(1)
    for c in range(3):  # each channel is a base image whose class is the triple's digit c
        matches = (flat[None] == batch.x[:, c].flatten(1)[:, None]).all(2)
        assert bool(matches.any(1).all())
        found = base_labels[matches.float().argmax(1)]
        assert torch.equal(found, batch.y // 10 ** (2 - c) % 10)
    again = build_datamodule(cfg).global_batch(3, 16)
    assert torch.equal(batch.x, again.x) and torch.equal(batch.y, again.y)  # deterministic per step
