"""Progressive GAN nets (Karras et al. 2018, "Progressive Growing of GANs", sec. 2-4 and table 2).

Both nets hold every resolution's layers from the start and run at the resolution they are given:
level 0 is 4x4, level k is 4*2^k, up to the data's size. At level k with a fade-in weight alpha
in [0, 1] (sec. 2, fig. 2):

- G: z (pixel-normalised) -> 4x4 block -> up-blocks 1..k; the output is
  (1 - alpha) * upsample(toRGB_{k-1}(h_{k-1})) + alpha * toRGB_k(h_k);
- D: the mirror image: its input x at level k goes through fromRGB_k and down-block k, mixed
  with fromRGB_{k-1}(avgpool(x)) by the same alpha, then down-blocks k-1..1, the minibatch
  standard deviation, and the last 4x4 block.

The layers are the equalised ones of gan_lightning/nets/style.py (weights N(0, 1), the He
constant applied at run time, sec. 4.1); G normalises each pixel's feature vector after every
conv (sec. 4.2). Called without a level they run at full resolution with alpha 1, so
``nets.g=progan`` / ``nets.d=progan`` also serve as fixed-size nets for the other models.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.nets.biggan import image_shape
from gan_lightning.nets.layers import Critic, norm2d
from gan_lightning.nets.style import EqualConv2d, EqualLinear, level_widths, minibatch_stddev, pixel_norm
from gan_lightning.registry import ConfigError

START = 4  # the first resolution (sec. 2: training starts at 4x4)
SLOPE = 0.2  # leaky ReLU (sec. A.1)


def progan_levels(size: int) -> int:
    """Number of doublings from 4x4 to a ``size`` x ``size`` image: size = 4 * 2^levels, levels >= 1."""
    levels = round(math.log2(size / START)) if size >= START else -1
    if levels < 1 or START * 2**levels != size:
        raise ConfigError(
            f"bad value for 'data.image_size': progressive growing doubles a 4x4 start, so the size must be "
            f"4*2^k with k >= 1 (8, 16, 32, 64...), got {size}; set data.image_size=32"
        )
    return levels


def level_of(size: int, levels: int) -> int:
    """The level (0: 4x4) of an image size, which must be one of the nets' resolutions."""
    level = round(math.log2(size / START)) if size >= START else -1
    if not 0 <= level <= levels or START * 2**level != size:
        raise ValueError(f"no level of these nets has size {size} (4*2^k for k in 0..{levels})")
    return level


def check_stage(level: int, alpha: float, levels: int) -> None:
    if not 0 <= level <= levels:
        raise ValueError(f"level must be in 0..{levels}, got {level}")
    if not 0.0 <= alpha <= 1.0 or (level == 0 and alpha != 1.0):
        raise ValueError(f"alpha must be in [0, 1] (1 at level 0: nothing fades in), got {alpha} at level {level}")


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour x2 (table 2's 'Upsample')."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def fade(old: Tensor, new: Tensor, alpha: float) -> Tensor:
    """(1 - alpha) * old + alpha * new; exactly ``old`` at alpha 0 and ``new`` at 1 (torch.lerp)."""
    return new if alpha == 1.0 else torch.lerp(old, new, alpha)


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, SLOPE)


def can_grow(net: Any) -> bool:
    """Whether a registered net class runs at every level with a fade-in weight (its ``grows``)."""
    return bool(getattr(net, "grows", False))


class UpBlock(nn.Module):
    """Upsample, then twice (3x3 conv, leaky ReLU, pixel norm)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(cin, cout, 3), EqualConv2d(cout, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = pixel_norm(lrelu(self.conv1(upsample(x))))
        return pixel_norm(lrelu(self.conv2(x)))


class DownBlock(nn.Module):
    """Twice (3x3 conv, leaky ReLU), the second to ``cout`` channels, then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        self.conv1, self.norm1 = EqualConv2d(cin, cin, 3), norm2d(norm, cin)
        self.conv2, self.norm2 = EqualConv2d(cin, cout, 3), norm2d(norm, cout)

    def forward(self, x: Tensor) -> Tensor:
        x = lrelu(self.norm1(self.conv1(x)))
        return F.avg_pool2d(lrelu(self.norm2(self.conv2(x))), 2)


class ProGANGenerator(nn.Module):
    """G(z, level, alpha): images at 4*2^level (full size by default). Channels per level halve
    toward the output down to ``nets.g_width`` like the other conv nets here (4w, 2w, w, w for
    32x32); the paper keeps 512 up to 32x32 and halves from 64x64 on (table 2)."""

    grows: ClassVar[bool] = True  # model 'progan' runs it at each stage's level and alpha
    spectral_norm_applies: ClassVar[bool] = False  # equalised layers: add_spectral_norm finds no layer to wrap

    def __init__(self, nets: Any, shape: tuple[int, ...], z_dim: int):
        super().__init__()
        channels, size = image_shape(shape, "progan")
        if nets.g_norm == "virtual_batch":
            raise ConfigError(
                "bad value for 'nets.g_norm': the progan generator normalises each pixel's features (pixel norm); "
                "drop nets.g_norm=virtual_batch"
            )
        self.levels = progan_levels(size)
        widths = level_widths(int(nets.g_width), self.levels)
        self.width0 = widths[0]
        # table 2's first 'Conv 4x4' on the 1x1 latent: a dense layer to 4x4 maps (fan-in z_dim)
        self.dense = EqualLinear(z_dim, widths[0] * START * START)
        self.conv = EqualConv2d(widths[0], widths[0], 3)
        self.blocks = nn.ModuleList([UpBlock(widths[i - 1], widths[i]) for i in range(1, self.levels + 1)])
        self.to_rgb = nn.ModuleList([EqualConv2d(w, channels, 1, gain=1.0) for w in widths])  # linear (sec. A.1)

    def forward(self, z: Tensor, level: int | None = None, alpha: float = 1.0) -> Tensor:
        level = self.levels if level is None else int(level)
        check_stage(level, alpha, self.levels)
        h = pixel_norm(lrelu(self.dense(pixel_norm(z))).view(z.shape[0], self.width0, START, START))
        h = pixel_norm(lrelu(self.conv(h)))
        for block in self.blocks[: max(level - 1, 0)]:
            h = block(h)
        if level == 0:
            return self.to_rgb[0](h)
        new = self.to_rgb[level](self.blocks[level - 1](h))
        if alpha == 1.0:  # the stabilising phase: the old toRGB is not computed (and gets no gradient)
            return new
        return fade(upsample(self.to_rgb[level - 1](h)), new, alpha)


class ProGANDiscriminator(Critic):
    """D(x, alpha): the level is the input's size. fromRGB (1x1 conv, leaky ReLU) per level,
    down-blocks, then the minibatch standard deviation (over the whole minibatch, sec. 3), a 3x3
    conv and table 2's 4x4 conv (a dense layer of the 4x4 maps) as features; the head is linear."""

    grows: ClassVar[bool] = True
    spectral_norm_applies: ClassVar[bool] = False
    batch_coupled: ClassVar[bool] = True  # its own minibatch standard deviation: no encoder trunk, no d_minibatch

    def __init__(self, nets: Any, shape: tuple[int, ...], norm: str):
        super().__init__()
        channels, size = image_shape(shape, "progan")
        if nets.get("d_minibatch", "none") != "none":
            raise ConfigError(
                "bad value for 'nets.d_minibatch': the progan critic has its own minibatch standard deviation "
                "before its last block; use nets.d_minibatch=none"
            )
        self.levels = progan_levels(size)
        widths = level_widths(int(nets.d_width), self.levels)
        self.from_rgb = nn.ModuleList([EqualConv2d(channels, w, 1) for w in widths])
        # block k takes level k to level k-1
        self.blocks = nn.ModuleList([DownBlock(widths[i], widths[i - 1], norm) for i in range(1, self.levels + 1)])
        self.conv = EqualConv2d(widths[0] + 1, widths[0], 3)
        self.dense = EqualLinear(widths[0] * START * START, widths[0])
        self.feature_dim = widths[0]
        self.head = EqualLinear(widths[0], 1, gain=1.0)

    def features(self, x: Tensor, alpha: float = 1.0) -> Tensor:
        level = level_of(x.shape[-1], self.levels)
        check_stage(level, alpha, self.levels)
        h = lrelu(self.from_rgb[level](x))
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha != 1.0:
                h = fade(lrelu(self.from_rgb[level - 1](F.avg_pool2d(x, 2))), h, alpha)
            for k in range(level - 1, 0, -1):
                h = self.blocks[k - 1](h)
        h = lrelu(self.conv(minibatch_stddev(h, group=h.shape[0])))
        return lrelu(self.dense(h.flatten(1)))

    def forward(self, x: Tensor, alpha: float = 1.0) -> Tensor:
        return self.head(self.features(x, alpha)).squeeze(1)


def downsample_to(x: Tensor, size: int) -> Tensor:
    """Images average-pooled to ``size`` x ``size`` (an integer factor of their size)."""
    factor = x.shape[-1] // size
    return x if factor == 1 else F.avg_pool2d(x, factor)


def real_at(x: Tensor, level: int, alpha: float) -> Tensor:
    """Real images as D sees them at a stage: average-pooled to 4*2^level and, during a fade-in,
    blended with their half-size version upsampled, by the same alpha as G's output (sec. 2, A.1)."""
    new = downsample_to(x, START * 2**level)
    return fade(upsample(F.avg_pool2d(new, 2)), new, alpha) if alpha != 1.0 else new
