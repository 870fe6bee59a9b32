"""Multi-domain image data (StarGAN's setting): every image exists in each of several domains.

``fashion_domains``: four domains of the same Fashion-MNIST garment, each a fixed function of the
image: 0 ``image`` (the image itself), 1 ``edges`` (``edge_map``: Sobel magnitude > threshold, as
fashion_edges), 2 ``inverted`` (255 - x), 3 ``blurred`` (a fixed Gaussian blur). Every test image
therefore has its true translation in every domain, so each ordered pair of domains (12) has a
ground truth (L1) and a class label (agreement of each domain's classifier).

Training batches take images of the training split, each in a source domain drawn at random: the
images and the domains are pure functions of (seed, step), so a resumed run sees the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.data.base import DataInfo, GANDataModule, ShuffledIndex, seed_for, to_model_space
from gan_lightning.data.mnist import FashionMNISTDataModule, MNISTConfig
from gan_lightning.data.translation import edge_map
from gan_lightning.registry import ConfigError


class DomainBatch(NamedTuple):
    """Multi-domain data: images, each in its source domain, that domain's index and the class."""

    x: Tensor  # (chunks, B, C, H, W) in model space
    domain: Tensor  # (chunks, B) source domain indexes
    y: Tensor  # (chunks, B) class labels (-1: none)


def pair_name(source: str, target: str) -> str:
    """The key of a translation direction between two domains (metrics are logged under it)."""
    return f"{source}_to_{target}"


def domain_pairs(domains: list[str] | tuple[str, ...]) -> list[tuple[int, int, str]]:
    """Every ordered pair of different domains: (source index, target index, its name)."""
    return [(i, j, pair_name(s, t)) for i, s in enumerate(domains) for j, t in enumerate(domains) if i != j]


def gaussian_blur(images_u8: Tensor, sigma: float, chunk: int = 2048) -> Tensor:
    """uint8 images (N, C, H, W) -> uint8: a Gaussian blur of standard deviation ``sigma`` pixels,
    the normalised 1-d kernel of radius r = ceil(3 sigma) applied along rows, then columns (the
    separable (2r+1)^2 kernel), zero (black) outside the image, in float64, rounded."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    k: list[float] = (g / g.sum()).tolist()
    h, w = images_u8.shape[-2:]
    out = torch.empty_like(images_u8)
    for start in range(0, len(images_u8), chunk):  # chunks: the float64 buffers stay small
        x = F.pad(images_u8[start : start + chunk].to(torch.float64), (r, r, r, r))
        rows = torch.zeros(*x.shape[:-1], w, dtype=torch.float64)
        for i in range(2 * r + 1):
            rows.add_(x[..., :, i : i + w], alpha=k[i])
        cols = torch.zeros(*x.shape[:-2], h, w, dtype=torch.float64)
        for i in range(2 * r + 1):
            cols.add_(rows[..., i : i + h, :], alpha=k[i])
        out[start : start + chunk] = cols.round_().clamp_(0, 255).to(torch.uint8)
    return out


def invert(images_u8: Tensor) -> Tensor:
    return 255 - images_u8


class DomainsDataModule(GANDataModule):
    """Base of multi-domain tasks: subclasses name ``domains`` and implement ``base_split`` (the
    uint8 images and labels a split's views are made of) and ``view(images, domain)``.

    ``info.kind`` is "pair" (image-to-image: the translation metrics and grids apply) and
    ``info.domains`` lists the domains."""

    domains: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self._train: tuple[Tensor, Tensor] | None = None  # views (D, N, C, H, W), labels (N,)
        self._test: tuple[Tensor, Tensor] | None = None
        self._index: ShuffledIndex | None = None

    def base_split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def view(self, images_u8: Tensor, domain: int) -> Tensor:
        """uint8 images of the base split -> the same images in ``domain`` (uint8)."""
        raise NotImplementedError

    def views(self, images_u8: Tensor) -> Tensor:
        """(D, N, C, H, W) uint8: the images in every domain."""
        return torch.stack([self.view(images_u8, d) for d in range(len(self.domains))])

    def domain_split(self, domain: int, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        """A split in one domain (its classifier trains on it)."""
        images, labels = self.base_split(train, size)
        return self.view(images, domain), labels

    def prepare(self) -> None:
        if self._train is None:
            images, labels = self.base_split(train=True)
            subset = int(getattr(self.dcfg, "subset", 0))
            if subset:
                images, labels = images[:subset], labels[:subset]
            self._train = (self.views(images), labels)
            self._index = ShuffledIndex(len(labels), self.seed)

    def move_to(self, device: torch.device) -> None:
        self.prepare()
        assert self._train is not None
        self._train = (self._train[0].to(device), self._train[1].to(device))

    def global_batch(self, step: int, size: int) -> DomainBatch:
        """The images of step ``step`` (a shuffled stream), each in a source domain drawn from a
        generator seeded by (seed, step)."""
        self.prepare()
        assert self._train is not None and self._index is not None
        views, labels = self._train
        idx = self._index.take(step * size, size).to(views.device)
        g = torch.Generator().manual_seed(seed_for(self.seed, step, 0xD0A1))
        source = torch.randint(len(self.domains), (size,), generator=g).to(views.device)
        return DomainBatch(to_model_space(views[source, idx]), source, labels[idx])

    def test_domains(self) -> tuple[Tensor, Tensor]:
        """uint8 test images in every domain (D, N, C, H, W) and their labels."""
        if self._test is None:
            images, labels = self.base_split(train=False)
            self._test = (self.views(images), labels)
        return self._test

    def domain_views(self) -> dict[str, Any]:
        """{domain name: a labelled view of it for ``get_classifier``}: agreement and FID are measured
        by the target domain's classifier."""
        return {name: DomainView(self, d) for d, name in enumerate(self.domains)}

    def test_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """The test images in the first two domains and their labels: the inputs (and truths) of
        the first direction, which sample grids and ``gan-lightning sample`` translate."""
        views, labels = self.test_domains()
        return views[0], views[1], labels


@dataclass
class FashionDomainsConfig(MNISTConfig):
    name: str = "fashion_domains"
    threshold: float = 0.2  # edges: Sobel magnitude above which a pixel is an edge (as fashion_edges)
    blur_sigma: float = 1.0  # blurred: the Gaussian's standard deviation in pixels (kernel radius ceil(3 sigma))


class FashionDomainsDataModule(DomainsDataModule):
    """Fashion-MNIST garments in four domains: image, edges, inverted, blurred."""

    Config = FashionDomainsConfig
    domains: ClassVar[tuple[str, ...]] = ("image", "edges", "inverted", "blurred")

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.fashion = FashionMNISTDataModule(cfg)
        d = self.dcfg
        self._views: list[Callable[[Tensor], Tensor]] = [
            lambda x: x,
            lambda x: edge_map(x, float(d.threshold)),
            invert,
            lambda x: gaussian_blur(x, float(d.blur_sigma)),
        ]

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        FashionMNISTDataModule.validate(cfg)
        if not 0 < cfg.data.threshold < 2:
            raise ConfigError(f"bad value for 'data.threshold': in (0, 2), got {cfg.data.threshold}")
        if not 0 < cfg.data.blur_sigma <= 4:
            raise ConfigError(f"bad value for 'data.blur_sigma': in (0, 4] pixels, got {cfg.data.blur_sigma}")

    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        return True

    @property
    def info(self) -> DataInfo:
        s = int(self.dcfg.image_size)
        return DataInfo(
            name="fashion_domains",
            kind="pair",
            shape=(1, s, s),
            num_classes=10,
            class_names=self.fashion.class_names,
            shape_b=(1, s, s),
            domains=list(self.domains),
        )

    def base_split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        return self.fashion.split(train, size)

    def view(self, images_u8: Tensor, domain: int) -> Tensor:
        return self._views[domain](images_u8)


class DomainView:
    """One domain of a multi-domain DataModule, shaped like a DataModule for ``get_classifier``
    (``split`` gives that domain's images); the classifier cache is keyed by the data, so the
    image and edge domains share fashion_mnist's and fashion_edges' classifiers."""

    domain_classifier = True

    def __init__(self, dm: DomainsDataModule, domain: int):
        self.dm, self.dcfg, self.domain = dm, dm.dcfg, domain
        self.info: Any = type("Info", (), {"name": f"{dm.info.name}_{dm.domains[domain]}"})()

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        return self.dm.domain_split(self.domain, train, size)
