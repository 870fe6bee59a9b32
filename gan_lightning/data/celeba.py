"""CelebA (Liu et al. 2015): aligned faces, DCGAN preprocessing, optional attribute labels.

Two ways to find the images:
- torchvision's layout, ``data_dir/celeba/img_align_celeba/*.jpg`` with ``list_eval_partition.txt``
  and ``list_attr_celeba.txt`` beside it; when it is missing and ``data.download=true``,
  torchvision's ``CelebA(download=True)`` is tried (it needs the network and Google Drive's quota);
- a folder, ``data.root=DIR`` holding ``img_align_celeba/`` (or the jpgs themselves), with the
  partition and attribute files optional (no partition file: every image is "train").

Images are centre-cropped (``data.crop``, 108 px of the 178x218 aligned images in DCGAN's
TensorFlow code; 0: the largest square) and resized to ``data.image_size``; the decoded uint8
array is cached in ``<folder>/cache/`` (decoding 200k jpgs takes minutes, reading the cache seconds).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import DataInfo, InMemoryImageModule
from gan_lightning.data.images import crop_resize, list_images, open_image
from gan_lightning.data.mnist import MissingDataError
from gan_lightning.files import sibling_tmp
from gan_lightning.progress import progress
from gan_lightning.registry import ConfigError, close_matches
from gan_lightning.schema import DataConfig

PARTITIONS = {"train": 0, "valid": 1, "test": 2}


@dataclass
class CelebAConfig(DataConfig):
    name: str = "celeba"
    root: str = ""  # folder mode: DIR with img_align_celeba/ (else data_dir/celeba, torchvision's layout)
    image_size: int = 64
    crop: int = 108  # centre square in source pixels before resizing (0: the largest square)
    channels: int = 3
    attribute: str = ""  # condition on one of the 40 binary attributes, e.g. Male (2 classes)
    max_images: int = 0  # use the first N images of a split only (0: all)
    download: bool = False  # let torchvision try its download when the files are missing


def read_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt``: 'file.jpg 0|1|2' per line -> {file: split}."""
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """``list_attr_celeba.txt``: a count, the attribute names, then 'file.jpg 1 -1 ...' per line."""
    lines = path.read_text().splitlines()
    names = lines[1].split()
    rows = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) == len(names) + 1:
            rows[parts[0]] = np.array([int(v) > 0 for v in parts[1:]])
    return names, rows


class CelebADataModule(InMemoryImageModule):
    Config = CelebAConfig

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        d = cfg.data
        if d.image_size < 8 or d.crop < 0 or d.channels not in (1, 3) or d.max_images < 0:
            raise ConfigError("bad value in 'data': image_size >= 8, crop >= 0, channels 1 or 3, max_images >= 0")

    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return bool(cfg.data.attribute)

    @property
    def info(self) -> DataInfo:
        d = self.dcfg
        s = int(d.image_size)
        classes = [f"not {d.attribute}", str(d.attribute)] if d.attribute else []
        shape = (int(d.channels), s, s)
        return DataInfo(name="celeba", kind="image", shape=shape, num_classes=len(classes), class_names=classes)

    # ------------------------------------------------------------------ files
    @property
    def folder(self) -> Path:
        """The folder that holds img_align_celeba/ and the list files."""
        return Path(self.dcfg.root) if self.dcfg.root else Path(self.dcfg.data_dir) / "celeba"

    def image_dir(self) -> Path:
        folder = self.folder
        for candidate in (folder / "img_align_celeba" / "img_align_celeba", folder / "img_align_celeba"):
            if candidate.is_dir():
                return candidate
        if self.dcfg.root and folder.is_dir() and any(folder.glob("*.jpg")):
            return folder
        if not self.dcfg.root and self.dcfg.download:
            self._download()
            if (folder / "img_align_celeba").is_dir():
                return folder / "img_align_celeba"
        raise MissingDataError(
            f"CelebA is not in {folder}: put the aligned images in {folder}/img_align_celeba/*.jpg "
            f"(from img_align_celeba.zip) with list_eval_partition.txt and list_attr_celeba.txt beside it "
            "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), or set data.root=DIR to a folder of "
            "img_align_celeba/, or try data.download=true (torchvision's Google Drive download, online only)"
        )

    def _download(self) -> None:
        from torchvision.datasets import CelebA

        try:
            CelebA(str(self.dcfg.data_dir), split="train", download=True)
        except Exception as e:  # offline, or Drive's quota
            raise MissingDataError(
                f"CelebA is not in {self.folder} and torchvision's download failed "
                f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); get the files by hand "
                f"into {self.folder}/img_align_celeba/"
            ) from e

    def files_of(self, split: str) -> list[Path]:
        """Image files of a split (train | valid | test), in name order."""
        images = self.image_dir()
        partition_file = self.folder / "list_eval_partition.txt"
        if partition_file.is_file():
            part = read_partition(partition_file)
            files = [images / f for f, s in sorted(part.items()) if s == PARTITIONS[split]]
            missing = [f for f in files[:5] if not f.is_file()]
            if missing:
                raise MissingDataError(f"{missing[0]} is listed in {partition_file} but missing (unzip incomplete?)")
        elif split == "train":
            files = list_images(images)
        else:
            raise MissingDataError(f"no {partition_file}: CelebA's '{split}' split is unknown (train uses every image)")
        if not files:
            raise MissingDataError(f"no images for CelebA's '{split}' split in {images}")
        n = int(self.dcfg.max_images)
        return files[:n] if n else files

    def labels_of(self, files: list[Path]) -> Tensor:
        attribute = str(self.dcfg.attribute)
        if not attribute:
            return torch.full((len(files),), -1, dtype=torch.long)
        path = self.folder / "list_attr_celeba.txt"
        if not path.is_file():
            raise MissingDataError(f"data.attribute={attribute} needs {path}")
        names, rows = read_attributes(path)
        if attribute not in names:
            close = close_matches(attribute, names)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown CelebA attribute '{attribute}'{hint}; known: {', '.join(names)}")
        col = names.index(attribute)
        try:
            return torch.tensor([int(rows[f.name][col]) for f in files], dtype=torch.long)
        except KeyError as e:
            raise MissingDataError(f"{path} has no line for {e.args[0]}") from None

    def _decoded(self, files: list[Path]) -> Tensor:
        """uint8 (N, C, S, S), from the cache when the same files were decoded before."""
        d = self.dcfg
        # names, sizes and modification times: images replaced under the same names are decoded again
        stats = [f.stat() for f in files]
        listing = "\n".join(f"{f.name} {st.st_size} {st.st_mtime_ns}" for f, st in zip(files, stats))
        key = hashlib.sha1(listing.encode()).hexdigest()[:10]
        cache = self.folder / "cache" / f"celeba-{d.image_size}-crop{d.crop}-c{d.channels}-{len(files)}-{key}.npy"
        if cache.is_file():
            return torch.from_numpy(np.load(cache))
        out = np.empty((len(files), int(d.channels), int(d.image_size), int(d.image_size)), dtype=np.uint8)
        for i, f in enumerate(progress(files, desc=f"decoding CelebA ({len(files)} images, once)", unit="img")):
            out[i] = crop_resize(open_image(f, int(d.channels)), int(d.image_size), int(d.crop))
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = sibling_tmp(cache)
            with open(tmp, "wb") as f:
                np.save(f, out)
            tmp.replace(cache)
        except OSError:  # a read-only dataset folder: decode again next time
            pass
        return torch.from_numpy(out)

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """uint8 images and labels (-1 without data.attribute) of the train or test split."""
        if size is not None and size != int(self.dcfg.image_size):
            raise ConfigError(f"CelebA is prepared at data.image_size={self.dcfg.image_size}, not {size}")
        files = self.files_of("train" if train else "test")
        return self._decoded(files), self.labels_of(files)

    def training_split(self) -> tuple[Tensor, Tensor]:
        return self.split(train=True)
