"""Shared fixtures: offline settings, tiny configs, synthetic MNIST-format data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

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


def tiny_for(args: list[str]) -> list[str]:
    """TINY for a run of ``args``, less the MLP width where the model (``model=`` or the experiment's) is
    an image-to-image one: those refuse a nets.* key their nets do not read."""
    import yaml

    from gan_lightning.config import experiment_path
    from gan_lightning.models import MODELS
    from gan_lightning.models.translation import TranslationModule

    name = next((a.split("=", 1)[1] for a in args if a.startswith(("model=", "model.name="))), None)
    exp = next((a[4:] for a in args if a.startswith("exp=")), None)
    if name is None and exp is not None:
        name = (yaml.safe_load(experiment_path(exp).read_text()).get("model") or {}).get("name")
    if name in MODELS and issubclass(MODELS[name], TranslationModule):
        return [a for a in TINY if not a.startswith("nets.mlp_hidden=")]
    return TINY


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


def write_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_folder_tree(root: Path, n: int = 6, size: tuple[int, int] = (40, 48)) -> Path:
    """CycleGAN's layout with random RGB images: root/trainA, trainB, testA, testB."""
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        for i in range(n):
            write_image(root / split / f"{i}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return root


CELEBA_ATTRIBUTES = ["Bald", "Eyeglasses", "Male", "Smiling"]


def make_celeba_tree(root: Path, n: int = 30) -> Path:
    """CelebA's files in torchvision's layout (root/img_align_celeba/*.jpg, 178x218, with the
    partition and attribute lists): image i is white inside its centred 108-px square and black
    outside; it is 'Male' when i is odd; 20 train, 5 valid, 5 test."""
    img = np.zeros((218, 178, 3), dtype=np.uint8)
    top, left = (218 - 108) // 2, (178 - 108) // 2
    img[top : top + 108, left : left + 108] = 255
    parts, attrs = [], []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        write_image(root / "img_align_celeba" / name, img)
        parts.append(f"{name} {0 if i < 20 else 1 if i < 25 else 2}")
        values = [-1, 1 if i % 3 == 0 else -1, 1 if i % 2 else -1, 1]
        attrs.append(name + " " + " ".join(f"{v:2d}" for v in values))
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(attrs) + "\n")
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    return make_folder_tree(tmp_path / "folders")


@pytest.fixture
def celeba_root(tmp_path: Path) -> Path:
    return make_celeba_tree(tmp_path / "celeba")


FASHION_ON_MACHINE = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()


def data_overrides(exp: str, mnist_root: Path, tmp_path: Path) -> list[str]:
    """Overrides that point experiment ``exp`` at the test data it needs: the data on the machine
    where it is there (toy data, Debian's Fashion-MNIST, with metrics off: no classifier to
    train), synthetic trees for data named in the experiment that no machine here has."""
    from gan_lightning.config import experiments_dir

    text = (experiments_dir() / f"{exp}.yaml").read_text()
    if "name: toy" in text:
        return []
    fashion = ("fashion_mnist", "fashion_edges", "stacked_fashion", "fashion_synthetic")
    if FASHION_ON_MACHINE and any(f"name: {d}" in text for d in fashion):
        return ["metrics.names=[]", "log.neighbours=false"]
    if "name: fashion_domains" in text:  # synthetic garments: four views in no time, no domain classifiers to train
        return [f"data.data_dir={mnist_root}", "data.download=false", "metrics.names=[]"]
    if "unpaired_folder" in text:
        return [f"data.root={make_folder_tree(tmp_path / 'folders')}", "data.image_size=32"]
    if "name: celeba" in text:  # Inception metrics on CPU are slow: one CelebA experiment keeps them
        metrics = ["metrics.n=16"] if exp == "dcgan_celeba" else ["metrics.names=[]"]
        return [f"data.root={make_celeba_tree(tmp_path / 'celeba')}", "data.image_size=16", *metrics]
    return [f"data.data_dir={mnist_root}", "data.download=false"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test runs in its own directory (runs/ and data/ land there). The cache (domain
    classifiers, reference statistics, decoded data) is never the user's: one per pytest process,
    shared by its tests, so a classifier of the synthetic data is trained once, not in every test
    that measures (entries are keyed by what they were computed from). Tests of the cache itself
    take ``private_cache``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_LIGHTNING_EXPERIMENTS", str(REPO / "experiments"))
    monkeypatch.delenv("GAN_LIGHTNING_RUN_DIR", raising=False)
    monkeypatch.setenv("GAN_LIGHTNING_CACHE", str(tmp_path_factory.getbasetemp() / "shared_cache"))


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own: for tests that need it empty or corrupt its entries."""
    path = tmp_path / "cache"
    monkeypatch.setenv("GAN_LIGHTNING_CACHE", str(path))
    return path
