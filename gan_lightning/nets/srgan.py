"""SRGAN's nets (Ledig et al. 2017, "Photo-realistic single image super-resolution using a
generative adversarial network", Fig. 4).

- ``SRResNet``: the generator. A 9x9 conv + PReLU, B residual blocks (conv 3x3, BN, PReLU,
  conv 3x3, BN, skip), a conv 3x3 + BN closed by a long skip from the first conv's output, then
  log2(scale) sub-pixel upsampling blocks (conv 3x3 to 4x the channels, PixelShuffle x2 (Shi et
  al. 2016), PReLU) and a final 9x9 conv. The paper uses B = 16 and 64 channels. The figure shows
  no output activation; a tanh maps the output to the model space [-1, 1] of the HR targets
  (the paper scales HR images to [-1, 1] too).
- ``SRGANDiscriminator``: conv 3x3 + LeakyReLU(0.2), then conv 3x3 + BN + LeakyReLU(0.2) blocks
  whose strides alternate 2, 1, 2, 1, ... and whose channels double every second block (64 ->
  512 in the paper: 8 convs in all), a dense layer of 1024 units, LeakyReLU(0.2) and a dense
  layer of 1 unit. The paper's sigmoid is folded into the loss (BCE on the logit, the project's
  ``nonsaturating`` loss), which is the same function, computed stably.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def _bn(norm: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if norm == "batch" else nn.Identity()


class SRResidualBlock(nn.Module):
    """conv 3x3, BN, PReLU, conv 3x3, BN, + the block's input."""

    def __init__(self, c: int, norm: str = "batch"):
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=bias),
            _bn(norm, c),
            nn.PReLU(c),
            nn.Conv2d(c, c, 3, padding=1, bias=bias),
            _bn(norm, c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SubPixelUpsample(nn.Module):
    """x2: conv 3x3 to 4c channels, PixelShuffle(2) (each group of 4 channels -> a 2x2 block), PReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, 4 * c, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """(N, c_in, h, w) in [-1, 1] -> (N, c_out, scale h, scale w) in [-1, 1]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 4,
        blocks: int = 16,
        width: int = 64,
        norm: str = "batch",
    ):
        super().__init__()
        ups = int(math.log2(scale))
        if scale < 2 or 2**ups != scale:
            raise ValueError(f"SRResNet upsamples by powers of 2, got scale {scale}")
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(
            *[SRResidualBlock(width, norm) for _ in range(blocks)],
            nn.Conv2d(width, width, 3, padding=1, bias=norm == "none"),
            _bn(norm, width),
        )
        self.upsample = nn.Sequential(*[SubPixelUpsample(width) for _ in range(ups)])
        self.tail = nn.Sequential(nn.Conv2d(width, out_channels, 9, padding=4), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(self.upsample(h + self.blocks(h)))  # the long skip over all residual blocks


class SRGANDiscriminator(nn.Module):
    """(N, C, S, S) -> (N,) logits; ``convs`` conv layers (the paper: 8), strides 1, 2, 1, 2, ..."""

    def __init__(self, in_channels: int, size: int, width: int = 64, convs: int = 8, norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        c, s = width, size
        for i in range(1, convs):
            stride = 2 if i % 2 else 1  # 2nd, 4th, ... conv halve the size
            nc = width * 2 ** (i // 2)  # after the first conv: 64, 128, 128, 256, 256, 512, 512
            layers += [nn.Conv2d(c, nc, 3, stride, 1, bias=norm == "none"), _bn(norm, nc), nn.LeakyReLU(0.2, True)]
            c, s = nc, (s - 1) // stride + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, 1024), nn.LeakyReLU(0.2, True), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
