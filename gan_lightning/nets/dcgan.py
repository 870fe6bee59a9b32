"""DCGAN nets (Radford et al. 2016) for any size s0 * 2^k with s0 in {4, 7}: 28, 32, 64, 128...

One class per role, the depth derived from the image size, not one copy per resolution.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_lightning.nets.layers import Critic, norm2d
from gan_lightning.registry import ConfigError


def dcgan_levels(size: int) -> tuple[int, int]:
    """(start size, number of x2 up/down-sampling steps) for an image size."""
    for start in (4, 7):
        steps, s = 0, size
        while s > start and s % 2 == 0:
            s, steps = s // 2, steps + 1
        if s == start and steps >= 1:
            return start, steps
    raise ConfigError(
        f"DCGAN nets need an image size of 4*2^k or 7*2^k (28, 32, 64, 128...), got {size}; "
        "set data.image_size accordingly"
    )


class DCGANGenerator(nn.Module):
    """z -> ConvT to s0 x s0 -> [ConvT 4x4 stride 2, norm, ReLU] ... -> ConvT -> tanh."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        channels, size, _ = shape
        start, steps = dcgan_levels(size)
        c = width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, c, start, 1, 0, bias=norm == "none"),
            norm2d(norm, c),
            nn.ReLU(True),
        ]
        for _ in range(steps - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=norm == "none"), norm2d(norm, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(Critic):
    """x -> Conv 4x4 stride 2, LeakyReLU(0.2) -> [Conv, norm, LeakyReLU] ... -> features -> linear logit."""

    def __init__(self, shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        channels, size, _ = shape
        start, steps = dcgan_levels(size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(steps - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm == "none"), norm2d(norm, c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers.append(nn.Flatten())
        self.trunk = nn.Sequential(*layers)
        self.feature_dim = c * start * start
        # a linear map of the flattened s0 x s0 map equals DCGAN's final s0 x s0 convolution
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
