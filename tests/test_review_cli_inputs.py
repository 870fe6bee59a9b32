"""Inputs of the sampling commands that hung, wrote NaN reports or gave tracebacks (a review, 2026-11-28)."""

from __future__ import annotations

import pytest
import torch

from gan_lightning.cli import main
from gan_lightning.latent import slerp
from gan_lightning.models.biggan import redraw_outside
from gan_lightning.registry import ConfigError
from tests.helpers import run


def test_a_tiny_biggan_threshold_is_refused_not_redrawn_for_ever() -> None:
    """|z| <= 1e-6 is accepted with probability ~1e-6 per draw: the redraw loop ran for minutes."""
    with pytest.raises(ConfigError, match="psi"):
        redraw_outside(torch.randn(64, 128), 1e-6)
    z = redraw_outside(torch.randn(64, 128), 0.04)  # the smallest threshold of Brock et al.'s table
    assert float(z.abs().max()) <= 0.04


def test_slerp_from_a_zero_vector_is_the_straight_line_not_nan() -> None:
    z1 = torch.randn(8)
    out = slerp(torch.zeros(8), z1, torch.linspace(0, 1, 5))
    assert torch.isfinite(out).all() and torch.allclose(out, torch.linspace(0, 1, 5)[:, None] * z1, atol=1e-6)


@pytest.fixture(scope="module")
def ring_ckpt(tmp_path_factory) -> str:
    import os

    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ring"))
    try:
        result = run("exp=gmm_ring", "steps=2", "out=r")
        return str((result.run_dir / "checkpoints" / "last.ckpt").resolve())
    finally:
        os.chdir(old)


@pytest.mark.parametrize("device", ["bogus", *([] if torch.cuda.is_available() else ["cuda"])])
def test_an_unusable_device_is_one_line_exit_2(ring_ckpt, tmp_path, capsys, device: str) -> None:
    assert main(["sample", ring_ckpt, "--n", "4", "--out", str(tmp_path / "s.npy"), "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device" in err and not (tmp_path / "s.npy").exists()


def test_sample_refuses_an_n_that_cannot_fit_in_memory(ring_ckpt, tmp_path, capsys) -> None:
    """--n 10**13 toy points (80 TB) went on to allocate them: a traceback or the OOM killer, not a line."""
    out = tmp_path / "s.npy"
    assert main(["sample", ring_ckpt, "--n", str(10**13), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n" in err and "GB" in err and not out.exists()
    assert main(["sample", ring_ckpt, "--n", "1000", "--out", str(out)]) == 0 and out.exists()


def test_evaluate_refuses_an_n_that_cannot_fit_in_memory(ring_ckpt, tmp_path, capsys) -> None:
    """As `sample`: the samples of --n 10**13 were allocated, a traceback after the model loaded."""
    out = tmp_path / "e.json"
    assert main(["evaluate", ring_ckpt, "--n", str(10**13), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n" in err and "GB" in err and not out.exists()


@pytest.mark.parametrize("lr", ["inf", "nan"])
def test_invert_refuses_a_non_finite_lr(tmp_path, capsys, lr: str) -> None:
    """--lr inf wrote an all-null report claiming 8 exact reconstructions and exited 0; nan was a traceback."""
    from gan_lightning.inversion import invert_images

    with pytest.raises(ConfigError, match="lr"):
        invert_images(None, torch.zeros(2, 1, 28, 28), lr=float(lr))  # type: ignore[arg-type]


def test_measures_refuses_n_below_2_before_any_work(capsys) -> None:
    assert main(["measures", "--n", "0"]) == 2
    assert "--n" in capsys.readouterr().err
