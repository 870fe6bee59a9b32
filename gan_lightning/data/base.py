"""DataModule base: deterministic, resumable streams of real batches.

A training step takes ``chunks`` real batches at once (one per critic step), as a tensor of
shape (chunks, batch, ...). The batch for step k is a pure function of (seed, k), so resuming
at step k needs no loader state, and under DDP each rank takes its slice of the same global
batch (an N-process run sees the data of one process with N times the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.schema import DataConfig


class Batch(NamedTuple):
    x: Tensor  # (chunks, B, *shape) real data in model space ([-1, 1] for images)
    y: Tensor  # (chunks, B) labels, -1 where there are none


class PairBatch(NamedTuple):
    """Image-to-image data: A and B images (paired or not) and the label of each A (-1: none)."""

    a: Tensor  # (chunks, B, *shape_a)
    b: Tensor  # (chunks, B, *shape_b)
    y: Tensor  # (chunks, B)


@dataclass
class DataInfo:
    """What a model needs to know about its data."""

    name: str
    kind: str  # "image" | "toy" | "pair" (image-to-image)
    shape: tuple[int, ...]
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    modes: list[list[float]] = field(default_factory=list)  # toy mixture centres
    mode_std: float = 0.0
    shape_b: tuple[int, ...] = ()  # kind "pair": the B domain's shape (``shape`` is A's)
    domains: list[str] = field(default_factory=list)  # multi-domain tasks (StarGAN): the domains' names
    # each class's share of the training labels, set when the data is loaded ([]: unknown, sampled as uniform)
    class_frequencies: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        d["shape_b"] = tuple(d.get("shape_b", ()))
        return cls(**d)


def to_model_space(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


class ShuffledIndex:
    """Positions -> indexes of an endless sequence of permutations of range(n), one per epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, 0x5EED))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm

    def take(self, start: int, count: int) -> Tensor:
        out, pos = [], start
        while count > 0:
            epoch, offset = divmod(pos, self.n)
            part = self._permutation(epoch)[offset : offset + count]
            out.append(part)
            pos, count = pos + len(part), count - len(part)
        return torch.cat(out)


class StepStream:
    """Endless iterable of the batches of steps ``start, start + 1, ...``; the model stops the run.

    It never ends by itself, so no checkpoint records a finished epoch and any checkpoint can
    be resumed with a larger ``steps``. ``start`` is read each time an iteration begins (the
    model's G step), so where a Trainer cuts epochs (``limit_train_batches``) the next epoch
    continues the stream instead of repeating it."""

    def __init__(self, batch_for_step: Callable[[int], Batch], start: int | Callable[[], int]):
        self.batch_for_step, self.start = batch_for_step, start

    def __iter__(self) -> Iterator[Batch]:
        step = self.start() if callable(self.start) else self.start
        while True:
            yield self.batch_for_step(step)
            step += 1


class StepCounting(Protocol):
    """What the stream of real batches reads of the LightningModule (the models' GANModule;
    data does not import models)."""

    @property
    def g_step(self) -> int: ...

    @property
    def real_batches_per_step(self) -> int: ...


class GANDataModule(L.LightningDataModule):
    """Base of the project's DataModules. Subclasses set ``Config`` and implement ``info`` and
    ``global_batch(step, size)`` (the whole-world batch of ``size`` samples for a step)."""

    Config = DataConfig
    domain_classifier = False  # whether `train-evaluator` can train a classifier of its classes

    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.cfg = cfg
        self.dcfg = cfg.data
        self.seed = int(cfg.seed)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        """Checks of the data section beyond its types (subclasses extend)."""

    @classmethod
    def has_labels(cls, cfg: DictConfig) -> bool:
        """Whether batches carry class labels (for conditional models)."""
        return False

    @property
    def info(self) -> DataInfo:
        raise NotImplementedError

    def training_labels(self) -> Tensor | None:
        """The training split's labels once loaded (None: not loaded, or no labels)."""
        return None

    def class_frequencies(self) -> list[float]:
        """Each class's share of the training labels (-1, no label, left out); [] before the data
        is loaded or without labels. Conditional models sample their labels at this mix."""
        labels, classes = self.training_labels(), int(self.info.num_classes)
        if labels is None or classes == 0:
            return []
        labels = labels[labels >= 0].cpu()
        if len(labels) == 0:
            return []
        counts = torch.bincount(labels, minlength=classes).double()
        return (counts / counts.sum()).tolist()

    def setup(self, stage: str | None = None) -> None:
        """Load the data; with data.resident=auto, keep in-memory datasets on the accelerator so
        batches are gathered there (no host-to-device copy per step)."""
        if hasattr(self, "prepare"):
            self.prepare()
        trainer = self.trainer
        if trainer is not None and self.dcfg.resident == "auto" and trainer.strategy.root_device.type != "cpu":
            self.move_to(trainer.strategy.root_device)

    def move_to(self, device: torch.device) -> None:
        """Move resident tensors (subclasses that hold data in memory)."""

    def global_batch(self, step: int, size: int) -> Any:
        raise NotImplementedError

    def rank_batch(self, step: int, chunks: int, rank: int, world: int) -> Any:
        """This rank's share of step ``step``: every field shaped (chunks, batch_size, ...)."""
        b = int(self.dcfg.batch_size)
        batch = self.global_batch(step, chunks * world * b)
        return type(batch)(*[t.view(chunks, world, b, *t.shape[1:])[:, rank].contiguous() for t in batch])

    def train_dataloader(self) -> StepStream:
        trainer = self.trainer
        module = cast(StepCounting, trainer.lightning_module) if trainer is not None else None
        chunks = int(module.real_batches_per_step) if module is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1

        def start() -> int:
            return int(module.g_step) if module is not None else 0

        return StepStream(lambda step: self.rank_batch(step, chunks, rank, world), start)


class InMemoryImageModule(GANDataModule):
    """A labelled image dataset held in memory as uint8; subclasses implement ``training_split``."""

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self._train: tuple[Tensor, Tensor] | None = None
        self._index: ShuffledIndex | None = None

    def training_split(self) -> tuple[Tensor, Tensor]:
        """uint8 images (N, C, S, S) and int64 labels (-1: none) to train on."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Load the training split now (fails early with how to get missing data)."""
        if self._train is None:
            self._train = self.training_split()
            self._index = ShuffledIndex(len(self._train[0]), self.seed)

    def training_labels(self) -> Tensor | None:
        return None if self._train is None else self._train[1]

    def move_to(self, device: torch.device) -> None:
        self.prepare()
        assert self._train is not None
        self._train = (self._train[0].to(device), self._train[1].to(device))

    def global_batch(self, step: int, size: int) -> Batch:
        self.prepare()
        assert self._train is not None and self._index is not None
        images, labels = self._train
        idx = self._index.take(step * size, size).to(images.device)
        return Batch(to_model_space(images[idx]), labels[idx])
