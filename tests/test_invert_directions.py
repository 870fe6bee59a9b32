"""Using a trained G: latent inversion (`gan-lightning invert`) and learned directions
(`gan-lightning directions`, InterFaceGAN) against known truths: z's that made the images, and a
latent space whose labels are linear by construction."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gan_lightning import directions as dirs
from gan_lightning.checkpoint import load_model
from gan_lightning.cli import main
from gan_lightning.data.base import DataInfo
from gan_lightning.directions import fit_boundary, learn_directions, measure_edits, project_out
from gan_lightning.inversion import invert_images
from gan_lightning.registry import ConfigError
from tests.conftest import REPO, TINY, make_mnist_tree

Z_DIM = 8


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN (z_dim 8, 28x28 synthetic Fashion-MNIST), trained 2 steps: a generator whose
    images depend smoothly on z (two random z's give images ~1e-5 apart in MSE), so inversion has a
    unique answer near the true z."""
    from tests.helpers import run

    base = tmp_path_factory.mktemp("invert_ckpt")
    root = make_mnist_tree(base / "data", "FashionMNIST", n_train=200, n_test=50)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("GAN_LIGHTNING_EXPERIMENTS", str(REPO / "experiments"))
        mp.setenv("GAN_LIGHTNING_CACHE", str(base / "cache"))
        r = run(
            "exp=dcgan",
            f"data.data_dir={root}",
            "data.download=false",
            "data.image_size=28",
            f"model.z_dim={Z_DIM}",
            "nets.d=mlp",
            "nets.init=default",  # PyTorch's init: images vary more with z than under DCGAN's N(0, 0.02)
            "metrics.names=[]",
            "steps=2",
            f"out={base / 'run'}",
        )
    return r.run_dir / "checkpoints" / "last.ckpt"


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    return line


# ----------------------------------------------------------------------------- inversion
def test_invert_recovers_the_z_of_sampled_images_and_not_of_real_ones(ckpt: Path, tmp_path: Path) -> None:
    """`sample` writes G(z) for z = randn(n, z_dim) seeded by --seed: `invert` finds those z (error
    ~0, PSNR > 100 dB); images G cannot make (the synthetic data, bars on noise) keep a large error."""
    npy = tmp_path / "x.npy"
    assert main(["sample", str(ckpt), "--n", "4", "--out", str(npy), "--seed", "3"]) == 0
    assert main(["invert", str(ckpt), str(npy), "--steps", "200", "--out", str(tmp_path / "inv")]) == 0
    report = json.loads((tmp_path / "inv" / "inversion.json").read_text())
    z_true = torch.randn(4, Z_DIM, generator=torch.Generator().manual_seed(3))
    z = torch.from_numpy(np.load(tmp_path / "inv" / "z.npy"))
    assert z.shape == (4, Z_DIM) and float((z - z_true).norm(dim=1).max()) < 1e-2
    assert report["summary"]["mse_mean"] < 1e-8 and report["summary"]["start"] == "random"
    mse = np.array([r["mse"] for r in report["per_image"]])
    recon = np.load(tmp_path / "inv" / "reconstructions.npy")
    np.testing.assert_allclose(mse, ((recon.astype(np.float64) - np.load(npy)) ** 2).mean((1, 2, 3)), atol=1e-12)
    assert min(r["psnr"] for r in report["per_image"]) > 100
    assert (tmp_path / "inv" / "grid.png").stat().st_size > 0

    off = tmp_path / "off"
    assert main(["invert", str(ckpt), "fashion_mnist:test:4", "--steps", "100", "--out", str(off)]) == 0
    summary = json.loads((off / "inversion.json").read_text())["summary"]
    assert summary["n"] == 4 and summary["mse_mean"] > 1e-2  # off the generator's manifold


def test_an_encoder_gives_the_start(ckpt: Path) -> None:
    """A model with ``has_encoder`` starts from ``encode(x)``: with 0 steps an encoder that returns the
    true z reconstructs exactly, a random start does not."""
    model = load_model(ckpt)
    z_true = torch.randn(3, Z_DIM, generator=torch.Generator().manual_seed(1))
    images = model.generate_from(z_true).add(1).div(2).clamp(0, 1)

    class Encoding(type(model)):  # type: ignore[misc]
        has_encoder = True

        def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return z_true[: len(x)]

    random_start = invert_images(model, images, steps=0)
    model.__class__ = Encoding
    encoded = invert_images(model, images, steps=0)
    assert encoded.start == "encoder" and random_start.start == "random"
    assert float(encoded.mse.max()) < 1e-12 and torch.equal(encoded.z, z_true)
    assert float(random_start.mse.min()) > 1e-6


def test_conditional_generators_invert_given_labels_and_refuse_without() -> None:
    from gan_lightning.config import load_config
    from gan_lightning.models import build_model

    cfg = load_config([*TINY, "exp=cgan_fashion", f"model.z_dim={Z_DIM}", "data.image_size=28", "nets.init=default"])
    info = DataInfo("fashion_mnist", "image", (1, 28, 28), 10, [str(i) for i in range(10)])
    model = build_model(cfg, info).eval()
    z_true = torch.randn(3, Z_DIM, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 5, 7])
    images = model.generate_from(z_true, None, y).add(1).div(2).clamp(0, 1)
    with pytest.raises(ConfigError, match=r"class-conditional, G\(z, y\): give the images' classes"):
        invert_images(model, images)
    with pytest.raises(ConfigError, match=r"labels must lie in 0\.\.9"):
        invert_images(model, images, torch.tensor([1, 5, 10]))
    found = invert_images(model, images, y, steps=200)
    assert float(found.mse.max()) < 1e-10 and torch.equal(found.labels, y)
    assert float((found.z - z_true).norm(dim=1).max()) < 1e-2
    with pytest.raises(ConfigError, match="class directions are learned for generators of z alone"):
        dirs.check_model(model)


def test_bad_inputs_exit_2_with_one_line(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def invert(images: Path | str, *extra: str) -> str:
        assert main(["invert", str(ckpt), str(images), "--steps", "1", "--out", str(tmp_path / "o"), *extra]) == 2
        return error_line(capsys)

    assert "does not exist" in invert(tmp_path / "missing.npy")
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.zeros((2, 3, 28, 28), np.float32))
    assert "give 1-channel images" in invert(rgb)
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((2, 1, 32, 32), np.float32))
    assert "resize them to 28x28" in invert(big)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((2, 784), np.float32))
    assert "expected an array (N, C, H, W)" in invert(flat)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 1, 28, 28), np.float32))
    assert "drop the labels" in invert(good, "--labels", "3")
    assert "NAME:train or NAME:test" in invert("fashion_mnist:valid")
    assert main(["invert", str(tmp_path / "no.ckpt"), str(good)]) == 2
    assert "no.ckpt" in error_line(capsys)
    assert main(["directions", str(ckpt), "--classes", "sneaker,banana", "--n", "200"]) == 2
    assert "unknown class 'banana'" in error_line(capsys)


# ----------------------------------------------------------------------------- directions
def linear_attributes(w1: torch.Tensor, w2: torch.Tensor, k: float = 4.0) -> dirs.Classify:
    """Two independent attributes of z: p_i = sigmoid(k w_i . z) (a sample has attribute i when w_i . z > 0)."""

    def classify(z: torch.Tensor) -> torch.Tensor:
        s = z.double()
        return torch.stack([torch.sigmoid(k * (s @ w1)), torch.sigmoid(k * (s @ w2))], dim=1)

    return classify


def true_normals(dim: int = 16, cos: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, dim, generator=g, dtype=torch.float64)
    w1 = a / a.norm()
    u = b - (b @ w1) * w1
    return w1, cos * w1 + math.sqrt(1 - cos**2) * u / u.norm()


def std_normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_fitted_normal_aligns_and_steps_flip_the_expected_share() -> None:
    """Labels by the sign of w . z: the fitted unit normal n is w (cos > 0.95), and a step s along n
    gives the attribute to the samples with -s (n . w) < w . z < 0: a share 2 Phi(s n.w) - 1 of those
    without it (and, for s < 0, takes it from the same share of those with it)."""
    w1, w2 = true_normals()
    classify = linear_attributes(w1, w2)
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(1))
    b1 = fit_boundary(z, classify(z)[:, 0] > 0.5)
    b2 = fit_boundary(z, classify(z)[:, 1] > 0.5)
    assert float(b1.normal @ w1) > 0.95 and float(b2.normal @ w2) > 0.95
    assert abs(float(b1.normal.norm()) - 1) < 1e-12 and abs(b1.offset) < 0.1 and b1.accuracy > 0.97
    held = torch.randn(4000, 16, generator=torch.Generator().manual_seed(2))
    steps = [-2.0, -0.5, 0.5, 1.0, 2.0]
    rows = measure_edits(classify, held, b1.normal, 0, steps, other=1)
    c = float(b1.normal @ w1)
    for s, row in zip(steps, rows):
        expected = 2 * std_normal_cdf(abs(s) * c) - 1
        assert abs(row["intended"] - expected) < 0.04, (s, row, expected)
        assert row["eligible"] == int(((classify(held)[:, 0] > 0.5) == (s < 0)).sum())


def test_projection_makes_the_direction_orthogonal_and_leaves_the_other_attribute() -> None:
    w1, w2 = true_normals()
    classify = linear_attributes(w1, w2)
    n1, n2 = w1 + 0.01 * torch.ones(16, dtype=torch.float64), w2
    n1 = n1 / n1.norm()
    p = project_out(n1, n2)
    paper = n1 - (n1 @ n2) * n2  # Shen et al. 2020, conditional manipulation
    torch.testing.assert_close(p, paper / paper.norm(), rtol=0, atol=1e-12)
    assert abs(float(p @ n2)) < 1e-12 and abs(float(p.norm()) - 1) < 1e-12
    n3 = torch.randn(16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    q = project_out(n1, n2, n3)
    assert abs(float(q @ n2)) < 1e-12 and abs(float(q @ n3)) < 1e-12
    with pytest.raises(ValueError, match="span"):
        project_out(n2, n2)

    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(3))
    result = learn_directions(classify, z, [0, 1], [2.0], names=["a", "b"])
    plain, _, conditioned, _ = result["report"]
    assert plain["conditioned_on"] is None and conditioned["conditioned_on"] == "b"
    assert abs(conditioned["cos_with_other_normal"]) < 1e-12 and plain["cos_with_other_normal"] > 0.5
    moved, kept = plain["steps"][0], conditioned["steps"][0]
    assert moved["other_abs_change"] > 0.15 and kept["other_abs_change"] < 0.2 * moved["other_abs_change"]
    assert kept["intended"] > 0.75  # still adds the attribute (along n1's part orthogonal to n2: cos 0.8)


def test_a_class_the_generator_rarely_makes_is_refused() -> None:
    w1, w2 = true_normals()
    base = linear_attributes(w1, w2)

    def rare(z: torch.Tensor) -> torch.Tensor:  # attribute 0 only beyond w1 . z > 3: ~0.1% of samples
        return base(z - 3 * w1.float())

    z = torch.randn(1000, 16, generator=torch.Generator().manual_seed(4))
    with pytest.raises(ConfigError, match=r"class 'a': \d+ of 800 samples have it.*raise --n"):
        learn_directions(rare, z, [0, 1], [1.0], names=["a", "b"])


def test_directions_command_writes_measures_normals_and_grids(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on the tiny DCGAN, with a stand-in for the domain classifier: two fixed random
    read-outs of the image, each thresholded at its median over G's samples."""

    def readout(model: Any, device: str = "cpu", data_dir: str | None = None) -> Any:
        proj = torch.randn(28 * 28, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x = model.sample(400, torch.Generator().manual_seed(9)).add(1).div(2).flatten(1).double()
        s = x @ proj
        mid, scale = s.median(0).values, s.std(0)
        return lambda images: torch.sigmoid(4 * (images.flatten(1).double() @ proj - mid) / scale)

    monkeypatch.setattr(dirs, "domain_classifier", readout)
    out = tmp_path / "d"
    assert main(["directions", str(ckpt), "--n", "400", "--classes", "0,1", "--step", "4", "--out", str(out)]) == 0
    report = json.loads((out / "directions.json").read_text())
    assert [(d["class"], d["conditioned_on"]) for d in report["directions"]] == [
        (0, None),
        (1, None),
        (0, "Trouser"),
        (1, "T-shirt/top"),
    ]
    normals = np.load(out / "normals.npy")
    assert normals.shape == (4, Z_DIM)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-12)
    assert abs(normals[2] @ normals[1]) < 1e-12 and abs(normals[3] @ normals[0]) < 1e-12
    for d in report["directions"]:
        assert [r["step"] for r in d["steps"]] == [f * 4 for f in dirs.STEP_FRACTIONS]
        assert d["steps"][-1]["intended"] > d["steps"][4]["intended"]  # a longer step adds it to more
        assert (out / d["grid"]).stat().st_size > 0
    assert "written to" in capsys.readouterr().out
