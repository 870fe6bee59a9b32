"""BigGAN nets (Brock et al. 2019), class-conditional by construction: G(z, y) and D(x, y).

G: z is split into one chunk per residual up-block plus a first chunk for the initial linear layer
(hierarchical latents); each block's BatchNorms take their gains and biases as linear functions of
[shared class embedding, the block's z chunk] (conditional BatchNorm). D: residual down-blocks, a
ReLU, sum pooling over space and the projection head of Miyato & Koyama 2018. Both nets carry one
SAGAN self-attention layer (Zhang et al. 2019) at ``nets.attention_res`` (0: none). Spectral norm
is the model's switch (``model.sn_g``/``model.sn_d``), applied to every conv and linear layer.

The depth follows the image size as for the DCGAN nets (s0 * 2^k, s0 in {4, 7}); widths double
towards the low resolutions from ``nets.g_width``/``nets.d_width``. Both classes say
``takes_labels = True``: conditional models feed them y directly instead of wrapping them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.nets.dcgan import dcgan_levels
from gan_lightning.nets.layers import Critic, norm2d
from gan_lightning.registry import ConfigError


def image_shape(shape: tuple[int, ...], net: str) -> tuple[int, int]:
    """(channels, size) of square images, else a ConfigError."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"net '{net}' needs square images (C, H, W), but the data has shape {shape}")
    return shape[0], shape[1]


def chunk_sizes(z_dim: int, chunks: int) -> list[int]:
    """Sizes of the hierarchical z chunks: as equal as possible, the first ones larger, summing to z_dim."""
    if z_dim < chunks:
        raise ConfigError(
            f"bad value for 'model.z_dim': the biggan generator splits z into {chunks} chunks (one for its "
            f"first layer, one per up-block), so z_dim must be >= {chunks}, got {z_dim}"
        )
    return [z_dim // chunks + (1 if i < z_dim % chunks else 0) for i in range(chunks)]


def attention_problem(res: int, valid: list[int], net: str, size: int) -> None:
    """Refuse an attention resolution that is not one of the net's feature-map sizes."""
    if res and res not in valid:
        raise ConfigError(
            f"bad value for 'nets.attention_res': the {net} for {size}x{size} images has no {res}x{res} "
            f"feature maps; use one of {', '.join(map(str, valid))}, or 0 for no self-attention"
        )


class ClassEmbedding(nn.Module):
    """G's shared class embedding, a lookup table y -> e_y, orthogonally initialised (BigGAN's init).

    Not an ``nn.Embedding`` on purpose: ``add_spectral_norm`` normalises G's conv and linear
    layers (the paper's spectral norm in G) and leaves this table alone, and the orthogonal
    regulariser skips it, as Brock et al. 2019 do for the shared embedding."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(num_classes, dim)))

    def forward(self, y: Tensor) -> Tensor:
        return F.embedding(y, self.weight)


class ConditionalBatchNorm2d(nn.Module):
    """BN(x) * (1 + W_gain c) + W_bias c, with c = [shared embedding of y, z chunk] and BN without
    its own affine parameters (running statistics kept as usual). Brock et al. 2019, Sec. 3/App. B."""

    def __init__(self, channels: int, cond_dim: int, eps: float = 1e-5):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=eps)
        self.to_gain = nn.Linear(cond_dim, channels, bias=False)
        self.to_bias = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        gain = 1.0 + self.to_gain(c)[:, :, None, None]
        return self.bn(x) * gain + self.to_bias(c)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019, Sec. 3): with N = H*W positions and C' = C/8,
    f = W_f x, g = W_g x, h = W_h x (C' x N each), beta_{j,i} = softmax_i(f_i . g_j),
    o_j = W_v sum_i beta_{j,i} h_i, y = x + gamma * o. gamma starts at 0 (the block starts as identity)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.f = nn.Conv2d(channels, inner, 1, bias=False)
        self.g = nn.Conv2d(channels, inner, 1, bias=False)
        self.h = nn.Conv2d(channels, inner, 1, bias=False)
        self.v = nn.Conv2d(inner, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, _, hh, ww = x.shape
        f, g, h = (m(x).flatten(2) for m in (self.f, self.g, self.h))  # (B, C', N)
        beta = torch.softmax(torch.bmm(g.transpose(1, 2), f), dim=-1)  # [b, j, i] = softmax_i(f_i . g_j)
        o = torch.bmm(h, beta.transpose(1, 2)).view(b, -1, hh, ww)  # o_j = sum_i beta_{j,i} h_i
        return x + self.gamma * self.v(o)


class GBlock(nn.Module):
    """Residual up-block: CBN, ReLU, x2 nearest upsampling, conv3x3, CBN, ReLU, conv3x3; the
    shortcut upsamples and maps channels with a 1x1 conv. Both CBNs read the block's condition c."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm2d(c_in, cond_dim), ConditionalBatchNorm2d(c_out, cond_dim)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2.0)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0))


class BigGANGenerator(nn.Module):
    """G(z, y): first z chunk -> linear -> s0 x s0 maps -> residual up-blocks (each conditioned on
    [embed(y), its own z chunk]), self-attention at one resolution -> BN, ReLU, conv3x3 -> tanh."""

    takes_labels: ClassVar[bool] = True  # conditional models pass y to it instead of wrapping it
    has_attention: ClassVar[bool] = True  # reads nets.attention_res

    def __init__(self, nets: Any, shape: tuple[int, ...], z_dim: int, num_classes: int, embed_dim: int):
        """Built as the registry builds nets (``nets.g_width``, ``nets.attention_res``), plus the
        number of classes and the size of the shared class embedding."""
        super().__init__()
        channels, size = image_shape(shape, "biggan")
        if nets.g_norm != "batch":
            raise ConfigError(
                f"bad value for 'nets.g_norm': the biggan generator normalises with class-conditional "
                f"BatchNorm, not '{nets.g_norm}'; leave nets.g_norm=batch"
            )
        width, attention_res = int(nets.g_width), int(nets.attention_res)
        self.start, steps = dcgan_levels(size)
        self.chunks = chunk_sizes(z_dim, steps + 1)
        chs = [width * 2 ** max(steps - 1 - i, 0) for i in range(steps + 1)]  # 4w, 2w, w, w for 32x32
        self.embed = ClassEmbedding(num_classes, embed_dim)
        self.linear = nn.Linear(self.chunks[0], chs[0] * self.start**2)
        self.blocks = nn.ModuleList([GBlock(chs[i], chs[i + 1], embed_dim + self.chunks[i + 1]) for i in range(steps)])
        resolutions = [self.start * 2 ** (i + 1) for i in range(steps)]
        attention_problem(attention_res, resolutions, "biggan generator", size)
        # after the block whose output has the attention resolution (None: no attention)
        self.attention_after = resolutions.index(attention_res) if attention_res else None
        self.attention = SelfAttention(chs[resolutions.index(attention_res) + 1]) if attention_res else None
        self.out_bn = nn.BatchNorm2d(chs[-1])
        self.out_conv = nn.Conv2d(chs[-1], channels, 3, 1, 1)
        self.width0 = chs[0]

    def conditions(self, z: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(the first z chunk, [embed(y), chunk k] for each block k)."""
        parts = torch.split(z, self.chunks, dim=1)
        e = self.embed(y)
        return parts[0], [torch.cat([e, zk], dim=1) for zk in parts[1:]]

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        z0, conds = self.conditions(z, y)
        h = self.linear(z0).view(z.shape[0], self.width0, self.start, self.start)
        for i, (block, c) in enumerate(zip(self.blocks, conds)):
            h = block(h, c)
            if i == self.attention_after:
                assert self.attention is not None
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    """Residual down-block: [norm, ReLU], conv3x3, norm, ReLU, conv3x3, 2x2 average pooling; the
    shortcut is a 1x1 conv then pooling. The first block skips the leading ReLU (its input is the
    image). ``norm`` is none for BigGAN (spectral norm only); d_norm=batch/layer also work."""

    def __init__(self, c_in: int, c_out: int, norm: str, preactivation: bool):
        super().__init__()
        self.preactivation = preactivation
        self.norm1 = norm2d(norm, c_in) if preactivation else nn.Identity()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.norm2 = norm2d(norm, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(x)) if self.preactivation else x
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return F.avg_pool2d(h, 2) + F.avg_pool2d(self.skip(x), 2)


class BigGANDiscriminator(Critic):
    """D(x, y) = linear(phi(x)) + <embed(y), phi(x)> with phi(x) = sum over space of ReLU(h), h
    from residual down-blocks and self-attention at one resolution (projection discriminator,
    Miyato & Koyama 2018; the whole critic as in Brock et al. 2019)."""

    takes_labels: ClassVar[bool] = True  # the projection head is part of the net
    has_attention: ClassVar[bool] = True  # reads nets.attention_res

    def __init__(self, nets: Any, shape: tuple[int, ...], norm: str, num_classes: int):
        """Built as the registry builds nets (``nets.d_width``, ``nets.attention_res``, the
        resolved D norm), plus the number of classes."""
        super().__init__()
        channels, size = image_shape(shape, "biggan")
        width, attention_res = int(nets.d_width), int(nets.attention_res)
        _, steps = dcgan_levels(size)
        chs = [channels] + [width * 2**i for i in range(steps)]  # w, 2w, 4w for 32x32
        self.blocks = nn.ModuleList([DBlock(chs[i], chs[i + 1], norm, preactivation=i > 0) for i in range(steps)])
        resolutions = [size // 2 ** (i + 1) for i in range(steps)]
        attention_problem(attention_res, resolutions, "biggan discriminator", size)
        self.attention_after = resolutions.index(attention_res) if attention_res else None
        self.attention = SelfAttention(chs[resolutions.index(attention_res) + 1]) if attention_res else None
        self.feature_dim = chs[-1]
        self.head = nn.Linear(self.feature_dim, 1)
        self.embed = nn.Embedding(num_classes, self.feature_dim)  # spectral norm covers it with sn_d

    def features(self, x: Tensor) -> Tensor:
        """phi(x): the sum-pooled ReLU of the last block's maps."""
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after:
                assert self.attention is not None
                h = self.attention(h)
        return F.relu(h).sum(dim=(2, 3))

    def projection(self, phi: Tensor, y: Tensor) -> Tensor:
        """<embed(y), phi>: the class term of the projection head."""
        return (self.embed(y) * phi).sum(1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        phi = self.features(x)
        return self.head(phi).squeeze(1) + self.projection(phi, y)
