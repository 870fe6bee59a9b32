"""StarGAN's nets (Choi et al. 2018): one generator conditioned on the target domain, and a
PatchGAN critic with a second, domain-classification head.

G(x, c): the target domain's one-hot label c is tiled over the image and concatenated to it as
extra input channels (sec. 3.1 and the appendix); an image-to-image generator maps C + K channels
to C. ``StarGenerator`` is the paper's (appendix, Table 4): a 7x7 convolution, two 4x4 stride-2
down-samplings, residual blocks, two 4x4 stride-2 up-samplings, a 7x7 convolution and tanh, with
instance norm. Its first convolution pads with zeros: a tiled label is a constant plane, and a
constant plane convolved with reflection padding stays constant, which the instance norm right
after subtracts exactly, so behind a reflection-padded first layer (the CycleGAN ResNet of
``nets/translation.py``) G could not see the label at all; with zero padding the label reaches the
next layers through the borders, as in the paper's G.
D(x) = (D_src(x), D_cls(x)) (appendix, Table 5): ``layers`` 4x4 stride-2 convolutions with Leaky
ReLU 0.01 and no normalisation, the width doubling each time; D_src a 3x3 stride-1 convolution to
one channel (a map of real/fake patch scores), D_cls a convolution whose kernel covers the whole
final map, to K domain logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.nets.layers import norm2d
from gan_lightning.nets.translation import ResidualBlock


def tile_label(domain: Tensor, num_domains: int, like: Tensor) -> Tensor:
    """Domain indexes (B,) -> one-hot planes (B, K, H, W) at ``like``'s size, dtype and device."""
    onehot = F.one_hot(domain.long(), num_domains).to(like.dtype)
    return onehot[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class StarGenerator(nn.Module):
    """(N, C + K, S, S) -> (N, C_out, S, S) in [-1, 1]; S a multiple of 4."""

    size_multiple = 4  # gives back its input size only when the size halves twice evenly

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, blocks: int = 6, norm: str = "instance"):
        super().__init__()
        bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 7, 1, 3, bias=bias), norm2d(norm, width), nn.ReLU()]
        c = width
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=bias), norm2d(norm, 2 * c), nn.ReLU()]
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=bias), norm2d(norm, c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, out_channels, 7, 1, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LabelConditioned(nn.Module):
    """G(x, domain) = net([x, tiled one-hot of domain]) along channels."""

    def __init__(self, net: nn.Module, num_domains: int):
        super().__init__()
        self.net, self.num_domains = net, num_domains

    def forward(self, x: Tensor, domain: Tensor) -> Tensor:
        return self.net(torch.cat([x, tile_label(domain, self.num_domains, x)], dim=1))


class ToDomain(nn.Module):
    """A one-input view of a ``LabelConditioned`` G that translates every image to one domain
    (what ``TranslationModule.translate`` calls); it owns no parameters of its own."""

    def __init__(self, g: LabelConditioned, domain: int):
        super().__init__()
        self.g, self.domain = g, domain
        self.train(g.training)  # a fresh view starts in g's mode, so translate's restore leaves g as it was

    def forward(self, x: Tensor) -> Tensor:
        return self.g(x, torch.full((len(x),), self.domain, dtype=torch.long, device=x.device))


def conv_out(size: int) -> int:
    """Spatial size after a 4x4 stride-2 convolution with padding 1."""
    return (size + 2 - 4) // 2 + 1


class StarDiscriminator(nn.Module):
    """(N, C, S, S) -> (patch scores (N, 1, s, s), domain logits (N, K))."""

    def __init__(self, channels: int, num_domains: int, size: int, width: int = 64, layers: int = 6):
        super().__init__()
        trunk: list[nn.Module] = []
        c_in, s = channels, size
        for i in range(layers):
            c_out = width * 2**i
            trunk += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.01)]
            c_in, s = c_out, conv_out(s)
        if s < 1:
            raise ValueError(f"{layers} stride-2 layers do not fit {size}x{size} images")
        self.trunk = nn.Sequential(*trunk)
        self.src = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(c_in, num_domains, s, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        return self.src(h), self.cls(h).flatten(1)


def max_layers(size: int) -> int:
    """The most stride-2 layers a ``StarDiscriminator`` fits on size x size images."""
    n = 0
    while conv_out(size) >= 1 and size > 1:
        size, n = conv_out(size), n + 1
    return n
