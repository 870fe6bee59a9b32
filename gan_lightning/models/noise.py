"""Per-rank noise for the training loop.

Each rank owns a generator; all are seeded alike and draw the *global* batch, each keeping its
own slice. Ranks therefore never share noise, and an N-process run draws exactly the noise of
one process with an N times larger batch (the property the DDP test checks).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class NoiseSource:
    DRAWS = ("normal", "uniform", "randint")  # the draws a step may make (perf.fast tapes each)

    def __init__(self, seed: int, rank: int = 0, world: int = 1, device: torch.device | str = "cpu"):
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def _slice(self, full: Tensor, n: int) -> Tensor:
        return full[self.rank * n : (self.rank + 1) * n] if self.world > 1 else full

    def normal(self, n: int, *shape: int) -> Tensor:
        """N(0, 1) of shape (n, *shape): this rank's share of a global draw."""
        full = torch.randn(n * self.world, *shape, generator=self.generator, device=self.device)
        return self._slice(full, n)

    def uniform(self, n: int, *shape: int) -> Tensor:
        """U[0, 1) of shape (n, *shape): this rank's share of a global draw."""
        full = torch.rand(n * self.world, *shape, generator=self.generator, device=self.device)
        return self._slice(full, n)

    def randint(self, high: int, n: int) -> Tensor:
        full = torch.randint(0, high, (n * self.world,), generator=self.generator, device=self.device)
        return self._slice(full, n)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["state"].cpu())
