"""MNIST and Fashion-MNIST through torchvision's datasets, held in memory as uint8.

Files are looked up in ``data_dir/<MNIST|FashionMNIST>/raw`` (torchvision's layout); for
Fashion-MNIST also in Debian's ``dataset-fashion-mnist`` folder (checked against torchvision's
MD5 sums and unpacked into ``data_dir``); otherwise torchvision downloads them when the machine
is online. A missing dataset is an error that says how to get it, never a switch to other data.
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor
from torchvision import datasets

from gan_lightning.data.base import DataInfo, InMemoryImageModule
from gan_lightning.files import sibling_tmp
from gan_lightning.registry import ConfigError, first_line
from gan_lightning.schema import DataConfig

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


class MissingDataError(ConfigError):
    """A dataset is not on this machine; the message says where to put it."""


@dataclass
class MNISTConfig(DataConfig):
    name: str = "mnist"
    image_size: int = 28  # 28, or 32 (padded or resized)
    resize: str = "pad"  # pad: 2 pixels of background each side | bilinear
    download: bool = True  # let torchvision download when the files are missing
    system_dir: str = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
    subset: int = 0  # train on the first N training images only (0: all)


def check_idx_file(path: Path) -> int:
    """Check an unpacked IDX file: magic number, 28 x 28 images, and a size that matches its
    header (a truncated download fails here). Returns the item count."""
    with open(path, "rb") as f:
        header = f.read(16)
    images = "images" in path.name
    magic, count = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    ok = magic == (2051 if images else 2049)
    if images:
        ok = ok and header[8:16] == (28).to_bytes(4, "big") * 2
    size = path.stat().st_size
    ok = ok and size == (16 + count * 784 if images else 8 + count)
    if not ok:
        raise MissingDataError(
            f"{path} is not a whole IDX file (magic {magic}, {count} items, {size} bytes): "
            "it is damaged or truncated; delete it and get the dataset again"
        )
    return count


def unpack_gz(gz: Path, target: Path, how_to_replace: str) -> None:
    """Unpack ``gz`` into ``target`` through a temporary file and a rename, so that a failure
    never leaves part of a file behind; a truncated or corrupt archive is a MissingDataError
    that names it and says how to replace it."""
    tmp = sibling_tmp(target)
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(target)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise MissingDataError(
            f"{gz} is truncated or corrupt ({first_line(e)}), so it cannot be unpacked; "
            f"replace it with a whole copy: {how_to_replace}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def prepare_image_tensor(images: Tensor, size: int, resize: str) -> Tensor:
    """uint8 (N, 28, 28) -> uint8 (N, 1, size, size)."""
    x = images.unsqueeze(1)
    if size == x.shape[-1]:
        return x.contiguous()
    if resize == "pad":
        p = (size - x.shape[-1]) // 2
        return F.pad(x, (p, size - x.shape[-1] - p, p, size - x.shape[-1] - p))
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8)


class MNISTDataModule(InMemoryImageModule):
    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return True

    Config = MNISTConfig
    domain_classifier = True
    dataset_cls: type[datasets.MNIST] = datasets.MNIST
    dataset_name = "mnist"
    title = "MNIST"
    class_names = [str(i) for i in range(10)]

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        d = cfg.data
        if d.image_size not in (28, 32):
            raise ConfigError(f"bad value for 'data.image_size': 28 or 32 for {cls.title}, got {d.image_size}")
        if d.resize not in ("pad", "bilinear"):
            raise ConfigError(f"bad value for 'data.resize': pad or bilinear, got '{d.resize}'")
        if d.subset < 0:
            raise ConfigError(f"bad value for 'data.subset': must be >= 0, got {d.subset}")

    @property
    def info(self) -> DataInfo:
        s = int(self.dcfg.image_size)
        return DataInfo(
            name=self.dcfg.name, kind="image", shape=(1, s, s), num_classes=10, class_names=self.class_names
        )

    # ------------------------------------------------------------------ files
    @property
    def raw_dir(self) -> Path:
        return Path(self.dcfg.data_dir) / self.dataset_cls.__name__ / "raw"

    def _from_system_dir(self) -> bool:
        """Unpack the dataset from a system folder into raw_dir; False if it is not there."""
        return False

    def how_to_get(self) -> str:
        names = ", ".join(f for f, _ in self.dataset_cls.resources)
        return (
            f"put the four IDX files ({names}) in {self.raw_dir}/ "
            f"(gzipped or not), or run once with network access and data.download=true"
        )

    def how_to_replace(self, gz: Path) -> str:
        """How to get a whole copy of ``gz`` (a damaged file of the dataset)."""
        return (
            f"delete it and run once with network access and data.download=true, "
            f"or copy a whole {gz.name} into {self.raw_dir}/"
        )

    def _has_files(self) -> bool:
        return all((self.raw_dir / name[:-3]).is_file() for name, _ in self.dataset_cls.resources)

    def _dataset(self, train: bool) -> datasets.MNIST:
        root = str(self.dcfg.data_dir)
        if not self._has_files():
            self._unzip_in_place()
        if not self._has_files():
            self._from_system_dir()
        if self._has_files():
            for name, _ in self.dataset_cls.resources:
                check_idx_file(self.raw_dir / name[:-3])
            return self.dataset_cls(root, train=train, download=False)
        if not self.dcfg.download:
            reason = "data.download=false"
        else:
            try:
                return self.dataset_cls(root, train=train, download=True)
            except Exception as e:  # offline: URLError, timeouts...
                reason = f"the download failed ({type(e).__name__}: {' '.join(str(e).split())[:240]})"
        raise MissingDataError(f"{self.title} is not in {self.raw_dir} and {reason}. To get it: {self.how_to_get()}.")

    def _unzip_in_place(self) -> None:
        """torchvision reads unpacked IDX files; unpack .gz ones a user dropped in raw_dir."""
        for name, _ in self.dataset_cls.resources:
            gz, raw = self.raw_dir / name, self.raw_dir / name[:-3]
            if gz.is_file() and not raw.is_file():
                unpack_gz(gz, raw, self.how_to_replace(gz))

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """uint8 images (N, 1, S, S) and int64 labels of a split, at ``size`` (default: the configured one)."""
        ds = self._dataset(train)
        images = prepare_image_tensor(ds.data, int(size or self.dcfg.image_size), self.dcfg.resize)
        return images, ds.targets.long()

    def training_split(self) -> tuple[Tensor, Tensor]:
        images, labels = self.split(train=True)
        if self.dcfg.subset:
            images, labels = images[: self.dcfg.subset], labels[: self.dcfg.subset]
        return images, labels


class FashionMNISTDataModule(MNISTDataModule):
    dataset_cls = datasets.FashionMNIST
    dataset_name = "fashion_mnist"
    title = "Fashion-MNIST"
    class_names = FASHION_CLASSES

    def _from_system_dir(self) -> bool:
        system = Path(self.dcfg.system_dir)
        files = [system / name for name, _ in self.dataset_cls.resources]
        if not all(p.is_file() for p in files):
            return False
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            target = self.raw_dir / path.name[:-3]
            if not target.is_file():
                unpack_gz(path, target, self.how_to_replace(path))
            check_idx_file(target)
        return True

    def how_to_replace(self, gz: Path) -> str:
        if gz.parent == Path(self.dcfg.system_dir):
            return "reinstall Debian's package: `sudo apt-get install --reinstall dataset-fashion-mnist`"
        return (
            f"delete it; then Debian's copy in {self.dcfg.system_dir} is used (`sudo apt-get install "
            f"dataset-fashion-mnist`), or {super().how_to_replace(gz).removeprefix('delete it and ')}"
        )

    def how_to_get(self) -> str:
        return (
            f"on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist` (files in {self.dcfg.system_dir}), "
            + super().how_to_get()
        )
