"""DiscoGAN's nets (Kim et al. 2017): an encoder-decoder generator without skip connections and
a conv discriminator with one output per image.

Generator: 4x4 stride-2 convs with LeakyReLU (0.2) halve the image down to a 4x4 bottleneck (at
most 4 times: 64 -> 4 as in the paper; 32 -> 4; 28 -> 7), then as many 4x4 stride-2 deconvs with
ReLU bring it back; batch norm everywhere except the first conv and the last deconv (tanh out).
Discriminator: the same conv encoder, then a conv over the whole remaining map to one logit per
image. The paper ends D with a sigmoid; here the loss applies it (binary cross-entropy with logits,
the same function, numerically stable).
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_lightning.nets.layers import norm2d


def halvings(size: int, max_depth: int = 4, bottleneck: int = 4) -> int:
    """How often ``size`` halves evenly without going below ``bottleneck`` (at most ``max_depth``)."""
    depth, s = 0, size
    while s % 2 == 0 and s // 2 >= bottleneck and depth < max_depth:
        s, depth = s // 2, depth + 1
    return depth


def conv_encoder(in_channels: int, width: int, depth: int, norm: str) -> tuple[list[nn.Module], int]:
    """``depth`` 4x4 stride-2 convs, width doubling, LeakyReLU; (layers, channels out)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    c = width
    for _ in range(1, depth):
        layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm == "none"), norm2d(norm, c * 2), nn.LeakyReLU(0.2, True)]
        c *= 2
    return layers, c


class EncoderDecoder(nn.Module):
    """(N, C_in, S, S) -> (N, C_out, S, S) in [-1, 1], no skip connections."""

    size_multiple = 4  # gives back its input size only when the size halves twice evenly
    min_size = 16  # ... down to a bottleneck of at least 4 pixels (``halvings``)

    def __init__(self, in_channels: int, out_channels: int, size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        depth = halvings(size)
        if depth < 2:
            raise ValueError(f"the encoder-decoder needs an image size that halves twice, got {size}")
        layers, c = conv_encoder(in_channels, width, depth, norm)
        for _ in range(1, depth):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=norm == "none"), norm2d(norm, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class GlobalDiscriminator(nn.Module):
    """(N, C, S, S) -> (N, 1, 1, 1): one logit per image."""

    def __init__(self, in_channels: int, size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        depth = max(1, halvings(size))
        layers, c = conv_encoder(in_channels, width, depth, norm)
        layers.append(nn.Conv2d(c, 1, size // 2**depth))  # over the whole remaining map
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
