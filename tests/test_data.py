"""DataModules: mixture geometry, deterministic streams, MNIST-format files and missing-data errors."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.data import MissingDataError, build_datamodule
from gan_lightning.data.base import ShuffledIndex
from gan_lightning.data.toy import mixture_centres
from tests.conftest import make_mnist_tree


def datamodule(*args: str):
    return build_datamodule(load_config(list(args)))


def test_ring_geometry() -> None:
    c = mixture_centres("ring").double()
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-6)
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8, rtol=0, atol=1e-6)


def test_grid_geometry_and_std() -> None:
    c = mixture_centres("grid")
    assert sorted(set(c[:, 0].tolist())) == [-4, -2, 0, 2, 4] and len({tuple(p) for p in c.tolist()}) == 25
    dm = datamodule("exp=gmm_grid")
    assert dm.std == 0.05 and datamodule("exp=gmm_ring").std == 0.01
    x = dm.global_batch(0, 20000).x
    nearest = torch.cdist(x, c).argmin(1)
    spread = (x - c[nearest]).std(0)
    torch.testing.assert_close(spread, torch.full((2,), 0.05), rtol=0.05, atol=0)
    counts = torch.bincount(nearest, minlength=25).float()
    assert counts.min() > 0.8 * 20000 / 25  # equal weights


def test_step_batches_are_a_function_of_the_step() -> None:
    dm = datamodule("exp=gmm_ring")
    a, b = dm.global_batch(7, 64), dm.global_batch(7, 64)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, dm.global_batch(8, 64).x)


def test_ranks_take_disjoint_slices_of_the_global_batch(mnist_root) -> None:
    """2 ranks of batch B see exactly the data of 1 rank of batch 2B, chunk by chunk."""
    dm2 = datamodule("exp=dcgan", "data=fashion_mnist", f"data.data_dir={mnist_root}", "data.batch_size=4")
    dm1 = datamodule("exp=dcgan", "data=fashion_mnist", f"data.data_dir={mnist_root}", "data.batch_size=8")
    for step in (0, 5):
        one = dm1.rank_batch(step, chunks=3, rank=0, world=1)
        r0, r1 = (dm2.rank_batch(step, chunks=3, rank=r, world=2) for r in (0, 1))
        assert one.x.shape == (3, 8, 1, 32, 32) and r0.x.shape == (3, 4, 1, 32, 32)
        assert torch.equal(torch.cat([r0.x, r1.x], dim=1), one.x)
        assert torch.equal(torch.cat([r0.y, r1.y], dim=1), one.y)


def test_shuffled_index_covers_each_epoch_once() -> None:
    idx = ShuffledIndex(10, seed=3)
    first = idx.take(0, 10)
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(idx.take(5, 10)[:5], first[5:])  # batches may span epochs
    assert sorted(idx.take(10, 10).tolist()) == list(range(10)) and not torch.equal(idx.take(10, 10), first)


def test_mnist_from_data_dir_scaled_and_padded(mnist_root) -> None:
    dm = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={mnist_root}", "data.download=false")
    dm.prepare()
    b = dm.global_batch(0, 16)
    assert b.x.shape == (16, 1, 32, 32) and b.x.min() >= -1 and b.x.max() <= 1
    assert (b.x[:, :, :2, :] == -1).all()  # the 2-pixel pad is background
    assert dm.info.num_classes == 10 and b.y.min() >= 0
    resized = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={mnist_root}", "data.resize=bilinear")
    resized.prepare()
    assert resized.global_batch(0, 4).x.shape == (4, 1, 32, 32)
    sub = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={mnist_root}", "data.subset=10")
    sub.prepare()
    assert len(sub._train[0]) == 10


def test_gzipped_files_in_data_dir_are_unpacked(tmp_path) -> None:
    root = make_mnist_tree(tmp_path / "d", "MNIST", gz=True)
    dm = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={root}", "data.download=false")
    dm.prepare()
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_fashion_mnist_from_a_system_folder(tmp_path) -> None:
    """Debian's package layout: four .gz files in one folder, unpacked into data_dir on first use."""
    system = make_mnist_tree(tmp_path / "sys", "x", gz=True) / "x" / "raw"
    dm = datamodule(
        "exp=quickstart", f"data.data_dir={tmp_path / 'data'}", f"data.system_dir={system}", "data.download=false"
    )
    dm.prepare()
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert dm.global_batch(0, 4).x.shape == (4, 1, 28, 28)


def test_missing_mnist_says_how_to_get_it(tmp_path) -> None:
    dm = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={tmp_path / 'empty'}", "data.download=false")
    with pytest.raises(MissingDataError) as info:
        dm.prepare()
    msg = str(info.value)
    assert "MNIST is not in" in msg and "train-images-idx3-ubyte.gz" in msg and "data.download=true" in msg


def test_missing_fashion_mnist_names_the_debian_package(tmp_path) -> None:
    dm = datamodule(
        "exp=quickstart",
        f"data.data_dir={tmp_path / 'e'}",
        f"data.system_dir={tmp_path / 'none'}",
        "data.download=false",
    )
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        dm.prepare()


def test_truncated_idx_file_is_named(tmp_path) -> None:
    root = make_mnist_tree(tmp_path / "d", "MNIST")
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    dm = datamodule("exp=dcgan", "data=mnist", f"data.data_dir={root}", "data.download=false")
    with pytest.raises(MissingDataError, match="train-images-idx3-ubyte is not a whole IDX file"):
        dm.prepare()


def test_missing_data_fails_before_anything_is_written(tmp_path) -> None:
    from tests.helpers import run

    with pytest.raises(MissingDataError):
        run("exp=dcgan", "data=mnist", f"data.data_dir={tmp_path / 'nothing'}", "data.download=false", "out=never")
    assert not (tmp_path / "never").exists()


def test_unpacking_leaves_another_process_temporary_file_alone(tmp_path) -> None:
    """Two processes unpacking the same archive (pytest-xdist workers, a notebook beside a run)
    must not share a temporary file: CI once failed when one's rename found the other's gone."""
    from gan_lightning.data.mnist import unpack_gz

    system = make_mnist_tree(tmp_path / "sys", "x", gz=True) / "x" / "raw"
    target = tmp_path / "t10k-labels-idx1-ubyte"
    foreign = [target.with_name(f".{target.name}.tmp"), target.with_suffix(".tmp")]
    for f in foreign:
        f.write_bytes(b"half of another process's file")
    unpack_gz(system / "t10k-labels-idx1-ubyte.gz", target, "get it again")
    assert target.read_bytes()[:4] == (2049).to_bytes(4, "big")
    for f in foreign:
        assert f.read_bytes() == b"half of another process's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, "sys", *(f.name for f in foreign)])


def test_16_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path) -> None:
    """PIL's convert('L') clips 16-bit values above 255: a 16-bit folder (scans, depth maps) loaded nearly all
    white. Truth: the 8-bit value v of each pixel written as the 16-bit 257 v."""
    import numpy as np
    from PIL import Image

    from gan_lightning.data.images import open_image
    from gan_lightning.evaluate import load_images

    values = np.array([0, 36, 73, 109, 146, 182, 219, 255], dtype=np.uint16)
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.tile(values * 257, (8, 1))).save(folder / f"{i}.png")
    assert Image.open(folder / "0.png").mode.startswith("I")
    assert np.asarray(open_image(folder / "0.png", 1))[0].tolist() == values.tolist()
    assert np.asarray(open_image(folder / "0.png", 3))[0, :, 0].tolist() == values.tolist()
    images, _ = load_images(str(folder), None)
    assert images[0, 0, 0].tolist() == values.tolist()
