"""DataModule base: deterministic, resumable streams of real batches.

A training step takes ``chunks`` real batches at once (one per critic step), as a tensor of
shape (chunks, batch, ...). The batch for step k is a pure function of (seed, k), so resuming
at step k needs no loader state, and under DDP each rank takes its slice of the same global
batch (an N-process run sees the data of one process with N times the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_lightning.config import DataConfig


class Batch(NamedTuple):
    x: Tensor  # (chunks, B, *shape) real data in model space ([-1, 1] for images)
    y: Tensor  # (chunks, B) labels, -1 where there are none


@dataclass
class DataInfo:
    """What a model needs to know about its data."""

    name: str
    kind: str  # "image" | "toy"
    shape: tuple[int, ...]
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    modes: list[list[float]] = field(default_factory=list)  # toy mixture centres
    mode_std: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


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
    be resumed with a larger ``steps``."""

    def __init__(self, batch_for_step: Callable[[int], Batch], start: int):
        self.batch_for_step, self.start = batch_for_step, start

    def __iter__(self) -> Iterator[Batch]:
        step = self.start
        while True:
            yield self.batch_for_step(step)
            step += 1


class GANDataModule(L.LightningDataModule):
    """Base of the project's DataModules. Subclasses set ``Config`` and implement ``info`` and
    ``global_batch(step, size)`` (the whole-world batch of ``size`` samples for a step)."""

    Config = DataConfig

    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.cfg = cfg
        self.dcfg = cfg.data
        self.seed = int(cfg.seed)

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        """Checks of the data section beyond its types (subclasses extend)."""

    @property
    def info(self) -> DataInfo:
        raise NotImplementedError

    def global_batch(self, step: int, size: int) -> Batch:
        raise NotImplementedError

    def rank_batch(self, step: int, chunks: int, rank: int, world: int) -> Batch:
        """This rank's share of step ``step``: shape (chunks, batch_size, ...)."""
        b = int(self.dcfg.batch_size)
        batch = self.global_batch(step, chunks * world * b)
        x = batch.x.view(chunks, world, b, *batch.x.shape[1:])[:, rank]
        y = batch.y.view(chunks, world, b)[:, rank]
        return Batch(x.contiguous(), y.contiguous())

    def train_dataloader(self) -> StepStream:
        trainer = self.trainer
        module = trainer.lightning_module if trainer is not None else None
        start = int(module.g_step) if module is not None else 0
        chunks = int(module.real_batches_per_step) if module is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        return StepStream(lambda step: self.rank_batch(step, chunks, rank, world), start)
