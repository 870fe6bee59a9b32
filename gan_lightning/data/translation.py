"""Image-to-image data: A and B domains, paired or unpaired.

``fashion_edges``: a task with ground truth built from Fashion-MNIST, like pix2pix's
edges2shoes: A = edge maps computed from the images (Sobel magnitude > threshold), B = the
images. Paired for pix2pix; unpaired for CycleGAN, where A's edge maps and B's images come
from disjoint halves of the training set (shuffled independently). On the test split the true
translation of every input is known, in both directions.

``paired_folder``: pix2pix's layout, each file an A|B side-by-side image (train/, test/ or val/).
``unpaired_folder``: CycleGAN's layout, trainA/ trainB/ testA/ testB/ of any image files.
Folder images are loaded once into memory at ``image_size`` (shorter side resized, centre crop).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import DataInfo, GANDataModule, PairBatch, ShuffledIndex, seed_for, to_model_space
from gan_lightning.data.images import IMAGE_SUFFIXES, crop_resize, list_images, load_images, open_image
from gan_lightning.data.mnist import FashionMNISTDataModule, MissingDataError, MNISTConfig
from gan_lightning.registry import ConfigError
from gan_lightning.schema import DataConfig


def edge_map(images_u8: Tensor, threshold: float = 0.2) -> Tensor:
    """uint8 images (N, 1, H, W) -> uint8 edge maps {0, 255}: Sobel gradient magnitude of the
    [0, 1] image above ``threshold`` (edges are white on black, like the images)."""
    x = images_u8.float() / 255
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3) / 4
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(2, 3))
    return ((gx.pow(2) + gy.pow(2)).sqrt() > threshold).to(torch.uint8) * 255


def disjoint_halves(n: int) -> tuple[Tensor, Tensor]:
    """Indices of two disjoint halves of ``n`` training images (a fixed permutation): the A and B
    domains of the unpaired Fashion-MNIST tasks."""
    if n < 2:
        raise ConfigError(
            f"bad value for 'data.subset': {n} training image(s) cannot be split into the disjoint A and B halves "
            "of an unpaired task; use data.subset >= 2 (0: all)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(12345))
    return perm[: n // 2], perm[n // 2 :]


class PairedDataModule(GANDataModule):
    """Base of the A/B DataModules: resident uint8 tensors, step-keyed batches, optional flips."""

    train_a: Tensor
    train_b: Tensor
    train_y: Tensor
    paired: bool = True
    # test_pairs() gives each A image its true B image even where training is unpaired
    # (fashion_edges, fashion_synthetic): L1, SSIM and PSNR to the truth are measured
    true_test_pairs: ClassVar[bool] = False
    # B is larger than A (super-resolution): only models whose nets upsample take it
    resizes: ClassVar[bool] = False
    # a model-free translation the metrics also score under its name ('bicubic'), or ''
    baseline: ClassVar[str] = ""

    def _streams(self) -> tuple[ShuffledIndex, ShuffledIndex]:
        n_a, n_b = len(self.train_a), len(self.train_b)
        a = ShuffledIndex(n_a, self.seed)
        return (a, a) if self.paired else (a, ShuffledIndex(n_b, seed_for(self.seed, 0xB)))

    def prepare(self) -> None:
        """Load ``train_a``, ``train_b`` and ``train_y`` once (each subclass)."""
        raise NotImplementedError

    def move_to(self, device: torch.device) -> None:
        self.prepare()
        self.train_a, self.train_b, self.train_y = (t.to(device) for t in (self.train_a, self.train_b, self.train_y))

    def global_batch(self, step: int, size: int) -> PairBatch:
        self.prepare()
        ia, ib = (s.take(step * size, size) for s in self._streams_cached())
        a = self.train_a[ia.to(self.train_a.device)]
        b = self.train_b[ib.to(self.train_b.device)]
        if getattr(self.dcfg, "flip", False):  # the same flip for both images of a pair, else one per domain
            g = torch.Generator().manual_seed(seed_for(self.seed, step, 0xF1))
            flip_a = (torch.rand(size, generator=g) < 0.5).to(a.device)
            flip_b = flip_a if self.paired else (torch.rand(size, generator=g) < 0.5).to(b.device)
            a = torch.where(flip_a[:, None, None, None], a.flip(-1), a)
            b = torch.where(flip_b[:, None, None, None], b.flip(-1), b)
        return PairBatch(to_model_space(a), to_model_space(b), self.train_y[ia.to(self.train_y.device)])

    def _streams_cached(self) -> tuple[ShuffledIndex, ShuffledIndex]:
        if not hasattr(self, "_stream_pair"):
            self._stream_pair = self._streams()
        return self._stream_pair

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 A and B test images (true pairs where the task has them) and labels (-1: none)."""
        raise NotImplementedError

    def domain_views(self) -> dict[str, Any]:
        """{'a' | 'b': a labelled view of that domain for ``get_classifier``} where the domain has a
        classifier (FID and label agreement are measured in its feature space); none by default."""
        return {}

    def baseline_translation(self, a_u8: Tensor) -> Tensor:
        """uint8 A images -> the ``baseline`` translation, [0, 1] floats in B's shape."""
        raise NotImplementedError(f"{type(self).__name__} has no baseline translation")


class FashionPairsDataModule(PairedDataModule):
    """A pair task built from Fashion-MNIST (edges, synthetic -> real, super-resolution): A and B
    are views of its images, labelled by the garment's class; B is ``image_size`` square, A is
    ``shape_a`` (the same by default)."""

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.fashion = FashionMNISTDataModule(cfg)
        self._loaded = False

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        FashionMNISTDataModule.validate(cfg)

    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return True

    def shape_a(self) -> tuple[int, ...]:
        s = int(self.dcfg.image_size)
        return (1, s, s)

    @property
    def info(self) -> DataInfo:
        s = int(self.dcfg.image_size)
        return DataInfo(
            name=str(self.dcfg.name),
            kind="pair",
            shape=self.shape_a(),
            num_classes=10,
            class_names=self.fashion.class_names,
            shape_b=(1, s, s),
        )


@dataclass
class EdgesConfig(MNISTConfig):
    name: str = "fashion_edges"
    paired: bool = True  # false: A and B from disjoint halves of the training set (CycleGAN)
    threshold: float = 0.2  # Sobel magnitude above which a pixel is an edge
    flip: bool = False


class FashionEdgesDataModule(FashionPairsDataModule):
    Config = EdgesConfig
    true_test_pairs = True

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.paired = bool(self.dcfg.paired)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        if not 0 < cfg.data.threshold < 2:
            raise ConfigError(f"bad value for 'data.threshold': in (0, 2), got {cfg.data.threshold}")

    def prepare(self) -> None:
        if self._loaded:
            return
        images, labels = self.fashion.training_split()
        edges = edge_map(images, self.dcfg.threshold)
        if self.paired:
            self.train_a, self.train_b, self.train_y = edges, images, labels
        else:  # disjoint halves: no edge map has its own image on the other side
            self.half_a, self.half_b = disjoint_halves(len(images))
            self.train_a, self.train_b, self.train_y = edges[self.half_a], images[self.half_b], labels[self.half_a]
        self._loaded = True

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """B-domain images of a split (the domain classifier and FID reference use them)."""
        return self.fashion.split(train, size)

    def edge_split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        images, labels = self.fashion.split(train, size)
        return edge_map(images, self.dcfg.threshold), labels

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = self.fashion.split(train=False)
        return edge_map(images, self.dcfg.threshold), images, labels

    def domain_views(self) -> dict[str, Any]:
        return {"b": self.fashion, "a": EdgeView(self)}


class EdgeView:
    """The A domain (edge maps) of fashion_edges, shaped like a DataModule for get_classifier."""

    domain_classifier = True

    def __init__(self, dm: Any):
        self.dm, self.dcfg = dm, dm.dcfg
        self.info = type("Info", (), {"name": "fashion_edges_A"})()

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        return self.dm.edge_split(train, size)


# ----------------------------------------------------------------------------- folders
def load_folder(folder: Path, size: int, channels: int) -> Tensor:
    """Every image under ``folder`` as uint8 (N, C, size, size): the largest centred square, resized."""
    files = list_images(folder)
    if not files:
        raise MissingDataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return load_images(files, size, channels)


@dataclass
class FolderPairsConfig(DataConfig):
    name: str = "unpaired_folder"
    root: str = ""  # the folder with trainA/ trainB/ testA/ testB/ (or train/ test/ for paired_folder)
    image_size: int = 64
    channels: int = 3
    flip: bool = True  # random horizontal flips (the same for both images of a pair)
    direction: str = "AtoB"  # paired_folder: which half of the side-by-side image is the input


class UnpairedFolderDataModule(PairedDataModule):
    """CycleGAN's layout: ``root/trainA``, ``root/trainB`` (and ``testA``, ``testB``)."""

    Config = FolderPairsConfig
    layout = "root/trainA/*.jpg, root/trainB/*.jpg (and root/testA, root/testB for tests)"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.paired = False
        self._loaded = False
        self._test: tuple[Tensor, Tensor, Tensor] | None = None
        self.test_split: dict[str, str] = {}  # where each domain's test images come from, once loaded

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        d = cfg.data
        if not d.root:
            raise ConfigError(f"'{d.name}' needs data.root=DIR with {cls.layout}")
        if d.channels not in (1, 3) or d.image_size < 8:
            raise ConfigError("bad value in 'data': channels 1 or 3, image_size >= 8")
        if d.direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"bad value for 'data.direction': AtoB or BtoA, got '{d.direction}'")

    @property
    def info(self) -> DataInfo:
        d = self.dcfg
        shape = (int(d.channels), int(d.image_size), int(d.image_size))
        return DataInfo(name=Path(d.root).name or d.name, kind="pair", shape=shape, shape_b=shape)

    def _dir(self, name: str) -> Path:
        path = Path(self.dcfg.root) / name
        if not path.is_dir():
            raise MissingDataError(f"{path} does not exist: '{self.dcfg.name}' expects {self.layout}")
        return path

    def prepare(self) -> None:
        if self._loaded:
            return
        s, c = int(self.dcfg.image_size), int(self.dcfg.channels)
        self.train_a, self.train_b = load_folder(self._dir("trainA"), s, c), load_folder(self._dir("trainB"), s, c)
        self.train_y = torch.full((len(self.train_a),), -1, dtype=torch.long)
        self._loaded = True
        self.test_pairs()  # read now: a bad test image fails the run before training, not at its first grid

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """testA/ and testB/; a domain without its test folder falls back to its training images, which is said
        (stderr) and recorded in ``test_split`` (the measures' description in summary.json names it)."""
        if self._test is None:
            s, c = int(self.dcfg.image_size), int(self.dcfg.channels)
            root = Path(self.dcfg.root)
            dirs = {}
            for side in ("A", "B"):
                if (root / f"test{side}").is_dir():
                    dirs[side], self.test_split[side.lower()] = root / f"test{side}", f"test{side}"
                else:
                    dirs[side] = self._dir(f"train{side}")
                    self.test_split[side.lower()] = f"train{side} (no test{side}/: training images)"
                    print(
                        f"[data] {root} has no test{side}/: the translation measures and grids read train{side}'s "
                        f"images, which the model trains on; add test{side}/ for held-out measures",
                        file=sys.stderr,
                    )
            a, b = load_folder(dirs["A"], s, c), load_folder(dirs["B"], s, c)
            self._test = (a, b, torch.full((len(a),), -1, dtype=torch.long))
        return self._test


class PairedFolderDataModule(UnpairedFolderDataModule):
    """pix2pix's layout: ``root/train/*.jpg`` (and ``test/`` or ``val/``), each an A|B side-by-side image."""

    layout = "root/train/*.jpg (and root/test or root/val), each file A|B side by side"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.paired = True

    def _split_pairs(self, folder: Path) -> tuple[Tensor, Tensor]:
        files = list_images(folder)
        if not files:
            raise MissingDataError(f"no images under {folder}: '{self.dcfg.name}' expects {self.layout}")
        s, c = int(self.dcfg.image_size), int(self.dcfg.channels)
        a_list, b_list = [], []
        for f in files:
            im = open_image(f, c)
            w, h = im.size
            a_list.append(crop_resize(im.crop((0, 0, w // 2, h)), s))
            b_list.append(crop_resize(im.crop((w // 2, 0, w, h)), s))
        a, b = torch.from_numpy(np.stack(a_list)), torch.from_numpy(np.stack(b_list))
        return (a, b) if self.dcfg.direction == "AtoB" else (b, a)

    def prepare(self) -> None:
        if self._loaded:
            return
        self.train_a, self.train_b = self._split_pairs(self._dir("train"))
        self.train_y = torch.full((len(self.train_a),), -1, dtype=torch.long)
        self._loaded = True
        self.test_pairs()  # read now: a bad test image fails the run before training, not at its first grid

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """test/ or val/; without either the training pairs, which is said and recorded in ``test_split``."""
        if self._test is None:
            root = Path(self.dcfg.root)
            folder = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
            if folder is None:
                folder = self._dir("train")
                print(
                    f"[data] {root} has no test/ or val/: the translation measures and grids read the training "
                    "pairs, which the model trains on; add test/ for held-out measures",
                    file=sys.stderr,
                )
            self.test_split = {"ab": folder.name if folder.name != "train" else "train (no test/ or val/)"}
            a, b = self._split_pairs(folder)
            self._test = (a, b, torch.full((len(a),), -1, dtype=torch.long))
        return self._test
