"""Fully connected nets, for 2-D toy data and flattened 28x28 images."""

from __future__ import annotations

import math

from torch import Tensor, nn

from gan_lightning.nets.layers import Critic, norm1d


class MLPGenerator(nn.Module):
    """z -> [Linear, norm, ReLU] x layers -> Linear -> (tanh for images) -> data shape."""

    def __init__(self, z_dim: int, shape: tuple[int, ...], hidden: int, layers: int, norm: str, image: bool):
        super().__init__()
        self.shape = tuple(shape)
        blocks: list[nn.Module] = []
        width_in = z_dim
        for _ in range(layers):
            blocks += [nn.Linear(width_in, hidden), norm1d(norm, hidden), nn.ReLU()]
            width_in = hidden
        blocks.append(nn.Linear(width_in, math.prod(shape)))
        if image:
            blocks.append(nn.Tanh())
        self.net = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class Maxout(nn.Module):
    """``out`` maxout units (Goodfellow et al. 2013): unit j is max_k (w_jk . x + b_jk) over ``pieces``
    affine maps, computed as one Linear of out * pieces outputs."""

    def __init__(self, width_in: int, out: int, pieces: int):
        super().__init__()
        self.out, self.pieces = out, pieces
        self.linear = nn.Linear(width_in, out * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.out, self.pieces).max(-1).values


class MLPDiscriminator(Critic):
    """data -> flatten -> [Linear, norm, LeakyReLU(0.2)] x layers -> features; head -> one logit.
    With ``maxout`` pieces > 0 each hidden layer is a layer of maxout units instead (the critic of
    the PacGAN/VEEGAN 2-D protocol: 3 layers of 200 units with 5 pieces)."""

    def __init__(self, shape: tuple[int, ...], hidden: int, layers: int, norm: str, maxout: int = 0):
        super().__init__()
        blocks: list[nn.Module] = [nn.Flatten()]
        width_in = math.prod(shape)
        for i in range(layers):
            blocks += [Maxout(width_in, hidden, maxout) if maxout else nn.Linear(width_in, hidden)]
            if i > 0:  # no normalisation on the input layer, as in DCGAN
                blocks.append(norm1d(norm, hidden))
            if not maxout:
                blocks.append(nn.LeakyReLU(0.2))
            width_in = hidden
        self.trunk = nn.Sequential(*blocks)
        self.feature_dim = width_in
        self.head = nn.Linear(width_in, 1)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
