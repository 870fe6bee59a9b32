"""Image-to-image nets: U-Net and ResNet generators, PatchGAN discriminators.

U-Net (Isola et al. 2017): encoder C64-C128-C256-C512..., decoder with skip connections and
dropout 0.5 in its three innermost layers; the depth follows the image size (down to 1x1 when
the size is a power of two, else as far as it halves evenly), so one class serves 28 to 256.
ResNet generator (Johnson et al. 2016, as in CycleGAN): c7s1-64, two stride-2 convs, n residual
blocks (6 or 9), two transposed convs, c7s1; reflection padding and instance norm.
PatchGAN (Isola et al. 2017): n_layers stride-2 convs, one stride-1 conv, a 1-channel output
map; n_layers=3 gives each output a 70x70 receptive field.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_lightning.nets.layers import norm2d


class UNetBlock(nn.Module):
    """down -> [inner] -> up, with the input concatenated to the output (the skip)."""

    def __init__(
        self,
        outer: int,
        inner: int,
        sub: nn.Module | None,
        norm: str,
        dropout: bool,
        in_channels: int | None = None,
        outermost: bool = False,
        out_channels: int | None = None,
    ):
        super().__init__()
        in_c = in_channels or outer
        down: list[nn.Module] = [nn.Conv2d(in_c, inner, 4, 2, 1, bias=norm == "none")]
        if not outermost:
            down = [nn.LeakyReLU(0.2, True), *down]
            if sub is not None:  # no norm at the innermost (1x1 or smallest) level
                down.append(norm2d(norm, inner))
        up_in = inner * 2 if sub is not None else inner
        up: list[nn.Module]
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(up_in, out_channels or outer, 4, 2, 1), nn.Tanh()]
        else:
            up = [nn.ReLU(True), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=norm == "none"), norm2d(norm, outer)]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.outermost = outermost
        self.model = nn.Sequential(*down, *([sub] if sub is not None else []), *up)

    def forward(self, x: Tensor) -> Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], dim=1)


def unet_depth(size: int, max_depth: int = 8) -> int:
    depth, s = 0, size
    while s % 2 == 0 and s > 1 and depth < max_depth:
        s, depth = s // 2, depth + 1
    return depth


class UNetGenerator(nn.Module):
    size_multiple = 4  # gives back its input size only when the size halves twice evenly

    def __init__(
        self, in_channels: int, out_channels: int, size: int, width: int = 64, norm: str = "batch", max_depth: int = 8
    ):
        super().__init__()
        depth = unet_depth(size, max_depth)
        if depth < 2:
            raise ValueError(f"a U-Net needs an image size divisible by 4, got {size}")
        mults = [min(2**i, 8) for i in range(depth)]  # 1, 2, 4, 8, 8, ...
        block: nn.Module | None = None
        for level in range(depth - 1, 0, -1):  # innermost first
            # dropout in the 8x-wide levels next to the innermost one (3 of them at 256x256)
            dropout = 4 <= level < depth - 1
            block = UNetBlock(width * mults[level - 1], width * mults[level], block, norm, dropout=dropout)
        self.net = UNetBlock(
            out_channels, width, block, norm, False, in_channels=in_channels, outermost=True, out_channels=out_channels
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ResidualBlock(nn.Module):
    def __init__(self, c: int, norm: str):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3, bias=norm == "none"),
            norm2d(norm, c),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3, bias=norm == "none"),
            norm2d(norm, c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    size_multiple = 4  # gives back its input size only when the size halves twice evenly
    # its first layer is reflection-padded: a constant input plane (a tiled label) stays a constant plane,
    # whose offset instance norm then subtracts, so with instance norm the net cannot see such an input
    blind_to_constant_planes_with_instance_norm = True

    def __init__(self, in_channels: int, out_channels: int, blocks: int = 9, width: int = 64, norm: str = "instance"):
        super().__init__()
        bias = norm == "none"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7, bias=bias),
            norm2d(norm, width),
            nn.ReLU(True),
        ]
        c = width
        for _ in range(2):
            layers += [nn.Conv2d(c, c * 2, 3, 2, 1, bias=bias), norm2d(norm, c * 2), nn.ReLU(True)]
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm2d(norm, c // 2),
                nn.ReLU(True),
            ]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, h, w) patch logits."""

    def __init__(self, in_channels: int, width: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, n_layers):
            nc = width * min(2**i, 8)
            layers += [nn.Conv2d(c, nc, 4, 2, 1, bias=bias), norm2d(norm, nc), nn.LeakyReLU(0.2, True)]
            c = nc
        nc = width * min(2**n_layers, 8)
        layers += [
            nn.Conv2d(c, nc, 4, 1, 1, bias=bias),
            norm2d(norm, nc),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(nc, 1, 4, 1, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def size_problem(g: str, patch_layers: int, size: int, multiple: int = 1, min_size: int = 1) -> str | None:
    """Why generator ``g`` and a PatchGAN of ``patch_layers`` cannot run on size x size images, or
    None. The PatchGAN halves the size patch_layers times, then its two 4x4 stride-1 convs need 3
    pixels (so size >= 3 * 2^patch_layers; 0: no PatchGAN); U-Net, ResNet and the encoder-decoder
    (DiscoGAN) give back the input size only when it halves twice evenly (their ``size_multiple``, 4), the
    encoder-decoder down to a 4-pixel bottleneck (its ``min_size``, 16)."""
    if size < min_size:
        return f"nets.g={g} needs data.image_size >= {min_size}, got {size}"
    need = 3 * 2**patch_layers
    if patch_layers and size < need:
        fits = max((n for n in range(1, patch_layers) if 3 * 2**n <= size), default=None)
        fix = f"data.image_size >= {need}" + (f" or nets.patch_layers={fits}" if fits else "")
        return f"{size} is too small for a PatchGAN of nets.patch_layers={patch_layers}, which needs {need}: use {fix}"
    if size % multiple:
        lower = size - size % multiple
        return f"nets.g={g} needs a multiple of {multiple}, got {size}: use {lower} or {lower + multiple}"
    return None


def receptive_field(n_layers: int) -> int:
    """Receptive field of one PatchGAN output: back through k=4 convs (strides 2..2, 1, 1)."""
    rf = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        rf = (rf - 1) * stride + 4
    return rf
