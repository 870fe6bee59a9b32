"""Shared fixtures: offline settings, tiny configs, synthetic MNIST-format data."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent

# small enough for a few CPU steps, big enough to exercise every code path
TINY = [
    "log.progress=false",
    "log.every=1",
    "log.sample_every=0",
    "log.ckpt_every=1000",
    "metrics.every=0",
    "nets.g_width=8",
    "nets.d_width=8",
    "nets.mlp_hidden=16",
    "data.batch_size=8",
    "metrics.n=200",
    "metrics.n_ref=300",
]


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """Write an IDX file (the MNIST format): magic, dims, then uint8 data."""
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 noisy images whose class k is a bright bar in one of 5 rows (5 pixels apart) and one
    of 2 halves: learnable, robust to small shifts, and plainly not real data."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        row, col = 3 + 5 * (k % 5), 2 if k < 5 else 15
        images[i, row : row + 3, col : col + 11] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def make_mnist_tree(
    root: Path, folder: str = "MNIST", n_train: int = 2000, n_test: int = 500, gz: bool = False
) -> Path:
    """A torchvision-layout raw folder root/<folder>/raw with synthetic data; returns root."""
    raw = root / folder / "raw"
    suffix = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels, gz)
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_mnist_tree(root, "MNIST")
    make_mnist_tree(root, "FashionMNIST")
    return root


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory (runs/ and data/ land there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_LIGHTNING_EXPERIMENTS", str(REPO / "experiments"))
    monkeypatch.delenv("GAN_LIGHTNING_RUN_DIR", raising=False)
    monkeypatch.setenv("GAN_LIGHTNING_CACHE", str(tmp_path / "cache"))  # never the user's cache
