"""Checkpoint errors that name the file and the problem; `gan-lightning sample` outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_lightning.checkpoint import CheckpointError, load_model, read_checkpoint
from gan_lightning.registry import ConfigError
from gan_lightning.sample import sample_to_file
from tests.helpers import run


@pytest.fixture
def toy_run():
    return run("exp=gmm_ring", "steps=3", "out=toy", "model.ema.decay=0.9")


@pytest.fixture
def image_run(mnist_root):
    return run(
        "exp=dcgan",
        "data=fashion_mnist",
        f"data.data_dir={mnist_root}",
        "data.download=false",
        "steps=2",
        "out=img",
        "data.image_size=28",
    )


def test_truncated_checkpoint(toy_run, tmp_path) -> None:
    good = toy_run.run_dir / "checkpoints" / "last.ckpt"
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt is corrupt or truncated"):
        read_checkpoint(bad)


def test_corrupt_empty_missing_and_foreign_checkpoints(tmp_path, toy_run) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt is corrupt"):
        read_checkpoint(garbage)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt is empty"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match=r"does not exist.*last\.ckpt"):
        read_checkpoint(toy_run.run_dir / "checkpoints" / "lsat.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not written by gan_lightning"):
        read_checkpoint(foreign)


def test_incompatible_checkpoint_for_resume(toy_run) -> None:
    ckpt = toy_run.run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"does not fit this model.*nets\.g=mlp"):
        run("exp=gmm_ring", "steps=6", "nets.mlp_hidden=32", f"resume={ckpt}", "out=other")


def test_resume_with_a_corrupt_checkpoint_is_a_clear_error(toy_run) -> None:
    ckpt = toy_run.run_dir / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"last\.ckpt is corrupt or truncated"):
        run("exp=gmm_ring", "steps=6", "out=toy", "resume=auto")


def test_load_model_restores_config_and_weights(toy_run) -> None:
    model = load_model(toy_run.run_dir / "checkpoints" / "last.ckpt")
    assert model.g_step == 3 and model.cfg.exp == "gmm_ring" and model.G_ema is not None
    saved = torch.load(toy_run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])


def test_sample_toy_npy_is_seeded(toy_run, tmp_path) -> None:
    ckpt = toy_run.run_dir / "checkpoints" / "last.ckpt"
    a = np.load(sample_to_file(ckpt, 100, tmp_path / "a.npy", seed=1))
    b = np.load(sample_to_file(ckpt, 100, tmp_path / "b.npy", seed=1))
    c = np.load(sample_to_file(ckpt, 100, tmp_path / "c.npy", seed=2))
    assert a.shape == (100, 2) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    raw = np.load(sample_to_file(ckpt, 100, tmp_path / "r.npy", seed=1, raw=True))
    assert not np.array_equal(a, raw)  # the EMA generator is not the raw one


def test_sample_images_in_unit_range_and_png(image_run, tmp_path) -> None:
    ckpt = image_run.run_dir / "checkpoints" / "last.ckpt"
    x = np.load(sample_to_file(ckpt, 10, tmp_path / "x.npy"))
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    png = sample_to_file(ckpt, 16, tmp_path / "grid.png")
    from PIL import Image

    assert Image.open(png).size[0] > 28 * 4
    with pytest.raises(ConfigError, match=r"\.npy or \.png"):
        sample_to_file(ckpt, 4, tmp_path / "x.jpg")


def test_sample_cli(toy_run, tmp_path) -> None:
    ckpt = toy_run.run_dir / "checkpoints" / "last.ckpt"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan_lightning",
            "sample",
            str(ckpt),
            "--n",
            "50",
            "--out",
            str(tmp_path / "s.npy"),
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan_lightning",
            "sample",
            str(tmp_path / "nope.ckpt"),
            "--out",
            str(tmp_path / "s.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "nope.ckpt does not exist" in bad.stderr
