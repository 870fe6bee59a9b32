"""Latent interpolation paths and the nearest-neighbour memorisation signal."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.latent import interpolation_grid, lerp, slerp
from gan_lightning.metrics.neighbours import closer_than_data_share, nearest
from tests.helpers import run


def test_lerp_and_slerp_endpoints_and_midpoints() -> None:
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    path = lerp(z0, z1, t)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[1], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(path[2], z1)
    s = slerp(z0, z1, t)
    torch.testing.assert_close(s[0], z0)
    torch.testing.assert_close(s[2], z1)
    # halfway along the quarter circle, with the norm halfway between 1 and 2
    torch.testing.assert_close(s[1], 1.5 * torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4)]))


def test_slerp_keeps_the_norm_of_equal_norm_endpoints() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(2, 64, generator=g)
    z1 = z1 * z0.norm() / z1.norm()
    norms = slerp(z0, z1, torch.linspace(0, 1, 11)).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((11,), z0.norm().item()), rtol=1e-5, atol=1e-5)
    assert lerp(z0, z1, torch.tensor([0.5])).norm() < 0.9 * z0.norm()  # the chord cuts inside


def test_interpolation_grid_layout() -> None:
    z0, z1 = torch.randn(3, 5), torch.randn(3, 5)
    grid = interpolation_grid(z0, z1, points=4)
    assert grid.shape == (12, 5)
    torch.testing.assert_close(grid[4], z0[1])
    torch.testing.assert_close(grid[7], z1[1])


def test_nearest_and_memorisation_share() -> None:
    g = torch.Generator().manual_seed(1)
    train = torch.randn(500, 8, generator=g)
    d, i = nearest(train[:10] + 1e-4, train, k=2)
    assert torch.equal(i[:, 0], torch.arange(10)) and (d[:, 0] < d[:, 1]).all()
    copies = train[:200] + 1e-3 * torch.randn(200, 8, generator=g)
    fresh = torch.randn(200, 8, generator=g)
    assert closer_than_data_share(copies, train) == 1.0
    fresh_share = closer_than_data_share(fresh, train)
    assert 0.05 < fresh_share < 0.8
    assert closer_than_data_share(fresh + 50, train) == 0.0


def test_training_writes_interpolations_and_neighbours(mnist_root) -> None:
    result = run(
        "exp=quickstart",
        f"data.data_dir={mnist_root}",
        "data.download=false",
        "steps=3",
        "out=n",
        "metrics.names=[fid,classes]",  # the neighbours are found in the metrics' feature space
        "log.sample_every=3",
        "log.interp_pairs=2",
        "log.interp_points=5",
    )
    names = sorted(p.name for p in (result.run_dir / "samples").glob("*.png"))
    assert names == [
        "interp_lerp_step_0000003.png",
        "interp_slerp_step_0000003.png",
        "neighbours_step_0000003.png",
        "step_0000003.png",
    ]
    final = result.summary["final"]
    assert 0 <= final["nn/share"] <= 1 and 0 <= final["nn/share_test"] <= 1
    from PIL import Image

    w, h = Image.open(result.run_dir / "samples" / "interp_slerp_step_0000003.png").size
    assert w > h  # 5 columns, 2 rows


@pytest.mark.parametrize("exp", ["gmm_ring"])
def test_toy_runs_skip_image_only_callbacks(exp: str) -> None:
    result = run(f"exp={exp}", "steps=2", "out=t", "log.sample_every=2")
    assert sorted(p.name for p in (result.run_dir / "samples").glob("*.png")) == ["step_0000002.png"]


class Memoriser:
    """A 'generator' that returns training images (model space): what the memorisation signal must catch."""

    def __init__(self, images_u8: torch.Tensor):
        self.images = images_u8.float() / 127.5 - 1

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.images[:n]


@pytest.mark.parametrize("ref_split", ["train", "test"])
def test_the_memorisation_signal_compares_with_the_training_images_whatever_the_reference(
    mnist_root, ref_split: str
) -> None:
    """With metrics.ref_split=test the 'nearest training images' were the test split's and the 'held-out' images
    the training split's: a generator that copies its training images looked like a fresh one."""
    from gan_lightning.callbacks.neighbours import neighbour_report
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.evaluator import Evaluator

    cfg = load_config(["exp=quickstart", f"data.data_dir={mnist_root}", "data.download=false", "data.subset=100"])
    dm = build_datamodule(cfg)
    dm.prepare()
    evaluator = Evaluator(["fid"], dm.info, dm, n_ref=200, ref_split=ref_split).prepare()
    trained_on, _ = dm.training_split()
    values, _ = neighbour_report(evaluator, Memoriser(trained_on), n=100, rows=2)
    assert values["nn/share"] == 1.0  # every sample is a training image: closer than any data point
    assert values["nn/share_test"] < 0.9  # held-out test images are not
