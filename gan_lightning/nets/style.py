"""Style-based nets: StyleGAN's generator (Karras et al. 2019) with StyleGAN2's modulated
convolutions and skip outputs (Karras et al. 2020), and a residual critic with the same layers.

- Equalised learning rate (Karras et al. 2018, sec. 4.1): weights are stored as N(0, 1) and
  multiplied at run time by the He constant ``gain / sqrt(fan_in)`` (gain sqrt(2) before a leaky
  ReLU, 1 elsewhere). A learning-rate multiplier ``lr_mul`` stores them as N(0, 1/lr_mul^2) and
  multiplies by ``lr_mul`` as well, so Adam moves them ``lr_mul`` times slower (the mapping
  net's 0.01, Karras et al. 2019, appendix C).
- Mapping net: z, normalised by pixel norm, through an MLP to w (w has z's size, as in the paper).
- Synthesis: a learned constant (4x4; 7x7 for sizes 7*2^k such as 28), then per resolution an
  upsampling (bilinear x2, i.e. the [1, 3, 3, 1]/4 filter with edge padding) and two 3x3 style
  layers, each with per-channel scaled noise, bias and leaky ReLU; a toRGB output per resolution
  is added to the upsampled image of the ones before (StyleGAN2's skip generator).
- ``nets.style_norm``: ``demod`` modulates the conv weights by the style and demodulates them
  (Karras et al. 2020, eq. 1-3); ``adain`` is StyleGAN's instance norm followed by the style's
  scale and bias (Karras et al. 2019, eq. 1). toRGB is modulated without demodulation in both.
- Noise: in training mode drawn per call from the model's per-rank generator, which the model
  passes as ``draw`` (required: ``noise_inputs`` says so, and only model 'stylegan' feeds it); in
  eval mode each layer uses a fixed noise image, so sampling is a function of z.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.nets.biggan import image_shape
from gan_lightning.nets.dcgan import dcgan_levels
from gan_lightning.nets.layers import Critic, norm2d
from gan_lightning.registry import ConfigError

SQRT2 = math.sqrt(2.0)
STYLE_NORMS = ("demod", "adain")
MAPPING_LR_MUL = 0.01  # Karras et al. 2019, appendix C
Draw = Callable[..., Tensor]  # draw(n, c, h, w) -> N(0, 1) noise


def style_levels(size: int) -> tuple[int, int]:
    """(size of the constant input, number of x2 upsamplings) for an image size."""
    try:
        return dcgan_levels(size)
    except ConfigError:
        raise ConfigError(
            f"bad value for 'data.image_size': the style nets grow a 4x4 (or 7x7) constant by doubling, so the "
            f"size must be 4*2^k or 7*2^k (8, 14, 16, 28, 32, 64...), got {size}; set data.image_size=32"
        ) from None


def check_style_options(norm: str, mapping_layers: int) -> None:
    if norm not in STYLE_NORMS:
        raise ConfigError(f"bad value for 'nets.style_norm': one of {', '.join(STYLE_NORMS)}, got '{norm}'")
    if mapping_layers < 1:
        raise ConfigError(f"bad value for 'nets.style_mapping_layers': must be >= 1, got {mapping_layers}")


def level_widths(width: int, steps: int) -> list[int]:
    """Channels per resolution level (0: the constant's), halving up to ``width`` like DCGAN's G."""
    return [width * 2 ** max(steps - 1 - i, 0) for i in range(steps + 1)]


# ---------------------------------------------------------------------- equalised layers
class EqualLinear(nn.Module):
    """y = x (c W)^T + lr_mul b, with c = lr_mul * gain / sqrt(fan_in) applied at run time."""

    def __init__(self, fan_in: int, out: int, gain: float = SQRT2, lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((out,), bias_init / lr_mul))
        self.lr_mul = lr_mul
        self.scale = lr_mul * gain / math.sqrt(fan_in)

    def effective_weight(self) -> Tensor:
        return self.weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight(), self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A same-padded convolution with the weight scaled by gain / sqrt(in * k * k) at run time."""

    def __init__(self, cin: int, cout: int, k: int, gain: float = SQRT2, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = gain / math.sqrt(cin * k * k)

    def effective_weight(self) -> Tensor:
        return self.weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.weight.shape[-1] // 2)


class ModulatedConv2d(nn.Module):
    """Karras et al. 2020, eq. 1-3: w'_oik = s_i w_oik with the style s = A(w) (affine, bias 1);
    demodulated w''_oik = w'_oik / sqrt(sum_ik w'_oik^2 + eps). Computed without per-sample
    weights: the input is scaled by s, convolved with the shared weight, and each output channel
    is multiplied by its demodulation coefficient (the same linear map)."""

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, eps: float = 1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.affine = EqualLinear(w_dim, cin, gain=1.0, bias_init=1.0)
        self.demodulate, self.eps = demodulate, eps

    def effective_weight(self) -> Tensor:
        return self.weight * self.scale

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s = self.affine(w)  # (N, cin)
        weight = self.effective_weight()
        y = F.conv2d(x * s[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:  # sigma_o^2 = sum_i s_i^2 sum_k w_oik^2
            d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).t() + self.eps)  # (N, cout)
            y = y * d[:, :, None, None]
        return y


def upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------- generator
class StyleLayer(nn.Module):
    """[upsample] -> 3x3 conv (modulated, or plain then AdaIN) -> + noise * per-channel scale ->
    + bias -> leaky ReLU (x sqrt 2, so activations keep unit scale)."""

    noise_const: Tensor  # the eval-mode noise image (a buffer)

    def __init__(self, cin: int, cout: int, w_dim: int, norm: str, size: int, up: bool, seed: int):
        super().__init__()
        self.up, self.norm = up, norm
        if norm == "demod":
            self.conv: nn.Module = ModulatedConv2d(cin, cout, 3, w_dim)
        else:
            self.conv = EqualConv2d(cin, cout, 3, gain=1.0, bias=False)
            self.style_scale = EqualLinear(w_dim, cout, gain=1.0, bias_init=1.0)
            self.style_bias = EqualLinear(w_dim, cout, gain=1.0)
        self.noise_strength = nn.Parameter(torch.zeros(cout))  # B of Karras et al. 2019, one per channel
        self.bias = nn.Parameter(torch.zeros(cout))
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("noise_const", torch.randn(1, 1, size, size, generator=g), persistent=False)

    def forward(self, x: Tensor, w: Tensor, draw: Draw | None = None) -> Tensor:
        if self.up:
            x = upsample(x)
        x = self.conv(x, w) if self.norm == "demod" else self.conv(x)
        n, _, h, wd = x.shape
        if self.training:
            if draw is None:  # the global RNG would break per-rank noise and the fast path's tape
                raise RuntimeError(
                    "the style generator draws noise inputs in training mode from the model's per-rank noise: "
                    "pass `draw` (model 'stylegan' does), or call it in eval mode (fixed noise images)"
                )
            noise = draw(n, 1, h, wd)
        else:
            noise = self.noise_const
        x = x + noise.to(x.dtype) * self.noise_strength[None, :, None, None]
        x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2
        if self.norm == "adain":  # AdaIN(x, y) = y_s (x - mu(x)) / sigma(x) + y_b
            x = F.instance_norm(x, eps=1e-8)
            x = x * self.style_scale(w)[:, :, None, None] + self.style_bias(w)[:, :, None, None]
        return x


class ToRGB(nn.Module):
    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


def pixel_norm(z: Tensor, eps: float = 1e-8) -> Tensor:
    """z / sqrt(mean_j z_j^2 + eps) (Karras et al. 2018, sec. 4.2)."""
    return z * torch.rsqrt(z.square().mean(1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z -> pixel norm -> ``layers`` x (equalised linear at lr multiplier 0.01, leaky ReLU) -> w."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = MAPPING_LR_MUL):
        super().__init__()
        self.layers = nn.ModuleList(
            [EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul) for i in range(layers)]
        )

    def forward(self, z: Tensor) -> Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
        return x


class StyleGenerator(nn.Module):
    """G(z) = synthesis(mapping(z) broadcast to every layer). ``synthesis(ws)`` takes one w per
    style input (``num_ws``: each conv layer, and the last toRGB; each toRGB shares the w of the
    next block's first conv, as in StyleGAN2), so styles can be mixed per layer. Built as the registry
    builds nets (``nets.g_width``, ``nets.style_mapping_layers``, ``nets.style_norm``)."""

    # capabilities, read by the models' config checks (gan_lightning/nets/__init__.py: validate_nets)
    noise_inputs: ClassVar[bool] = True  # training draws noise per layer: the model must pass ``draw``
    spectral_norm_applies: ClassVar[bool] = False  # equalised layers: add_spectral_norm finds no layer to wrap
    style_options: ClassVar[bool] = True  # it reads nets.style_norm and nets.style_mapping_layers
    w_space: ClassVar[bool] = True  # mapping(z) -> w and from_w(w) -> images (metric 'ppl' measures in W)
    w_avg: Tensor  # running mean of w (a buffer the model updates during training)

    def __init__(self, nets: Any, shape: tuple[int, ...], z_dim: int):
        super().__init__()
        mapping_layers, norm, width = int(nets.style_mapping_layers), str(nets.style_norm), int(nets.g_width)
        check_style_options(norm, mapping_layers)
        channels, size = image_shape(shape, "style")
        start, steps = style_levels(size)
        widths = level_widths(width, steps)
        self.z_dim = self.w_dim = z_dim
        self.steps = steps
        self.mapping = MappingNetwork(z_dim, z_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(widths[0], start, start))
        layers = [StyleLayer(widths[0], widths[0], z_dim, norm, start, up=False, seed=0)]
        for i in range(1, steps + 1):
            s = start * 2**i
            layers.append(StyleLayer(widths[i - 1], widths[i], z_dim, norm, s, up=True, seed=2 * i - 1))
            layers.append(StyleLayer(widths[i], widths[i], z_dim, norm, s, up=False, seed=2 * i))
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.ModuleList([ToRGB(c, channels, z_dim) for c in widths])
        self.num_ws = len(layers) + 1
        # the resolution level (0: the constant's) of the layer each w feeds
        self.w_levels = [min((i + 1) // 2, steps) for i in range(self.num_ws)]
        self.register_buffer("w_avg", torch.zeros(z_dim))

    def synthesis(self, ws: Tensor, draw: Draw | None = None) -> Tensor:
        """Images from styles ``ws`` (N, num_ws, w_dim); ``draw`` gives the training noise."""
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be (N, {self.num_ws}, w_dim), got {tuple(ws.shape)}")
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        x = self.layers[0](x, ws[:, 0], draw)
        img = self.to_rgb[0](x, ws[:, 1])
        for b in range(1, self.steps + 1):
            x = self.layers[2 * b - 1](x, ws[:, 2 * b - 1], draw)
            x = self.layers[2 * b](x, ws[:, 2 * b], draw)
            img = upsample(img) + self.to_rgb[b](x, ws[:, 2 * b + 1])
        return img

    def broadcast(self, w: Tensor) -> Tensor:
        """One w for every style input: (N, w_dim) -> (N, num_ws, w_dim)."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """The truncation trick w' = w_avg + psi (w - w_avg) (Karras et al. 2019, sec. 3.3)."""
        return torch.lerp(self.w_avg.to(w.dtype).expand_as(w), w, psi)

    @torch.no_grad()
    def track_w_avg(self, w_mean: Tensor, decay: float) -> None:
        """w_avg <- decay * w_avg + (1 - decay) * w_mean (the mean w of a training batch)."""
        self.w_avg.lerp_(w_mean.detach().to(self.w_avg.dtype), 1.0 - decay)

    def from_w(self, w: Tensor) -> Tensor:
        """Images from one w per sample (N, w_dim), fed to every style input."""
        return self.synthesis(self.broadcast(w))

    def forward(self, z: Tensor, psi: float = 1.0) -> Tensor:
        w = self.mapping(z)
        return self.from_w(w if psi == 1.0 else self.truncate(w, psi))


class Truncated(nn.Module):
    """G(z) with the truncation trick at strength ``psi``: a net for sampling."""

    def __init__(self, net: StyleGenerator, psi: float):
        super().__init__()
        self.net, self.psi = net, float(psi)
        self.train(net.training)  # so a caller restoring this module's mode restores the net's

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z, psi=self.psi)


# ---------------------------------------------------------------------- style mixing figure
MIXING_RANGES = ("coarse", "middle", "fine")


def mixing_ranges(levels: int) -> dict[str, range]:
    """Resolution levels split in coarse, middle and fine thirds (the first ones rounded up)
    as in Karras et al. 2019, fig. 3, where the levels are 4-8, 16-32 and 64-1024 pixels."""
    coarse = math.ceil(levels / 3)
    middle = math.ceil((levels - coarse) / 2)
    return {
        "coarse": range(0, coarse),
        "middle": range(coarse, coarse + middle),
        "fine": range(coarse + middle, levels),
    }


@torch.no_grad()
def style_mixing_grid(
    net: StyleGenerator, n_a: int, n_b: int, generator: torch.Generator | None = None, psi: float = 1.0
) -> tuple[Tensor, int]:
    """(images, images per row) of Karras et al. 2019's fig. 3: the first row shows sources B
    (after a blank tile), then for each range (coarse, middle, fine) one row per source A: A, then
    A's styles with that range's layers copied from each B. Eval mode (fixed noise)."""
    was_training = net.training
    net.eval()
    device = net.w_avg.device
    w_a = net.truncate(net.mapping(torch.randn(n_a, net.z_dim, generator=generator).to(device)), psi)
    w_b = net.truncate(net.mapping(torch.randn(n_b, net.z_dim, generator=generator).to(device)), psi)
    img_a, img_b = net.synthesis(net.broadcast(w_a)), net.synthesis(net.broadcast(w_b))
    rows = [torch.cat([torch.full_like(img_b[:1], -1.0), img_b])]
    levels = torch.tensor(net.w_levels, device=device)
    for span in mixing_ranges(net.steps + 1).values():
        copied = ((levels >= span.start) & (levels < span.stop))[None, None, :, None]  # (1, 1, num_ws, 1)
        ws = torch.where(copied, net.broadcast(w_b)[None], net.broadcast(w_a)[:, None])  # (n_a, n_b, num_ws, w)
        mixed = net.synthesis(ws.flatten(0, 1)).view(n_a, n_b, *img_a.shape[1:])
        rows += [torch.cat([img_a[i : i + 1], mixed[i]]) for i in range(n_a)]
    net.train(was_training)
    return torch.cat(rows), n_b + 1


# ---------------------------------------------------------------------- critic
class ResidualDown(nn.Module):
    """StyleGAN2's residual D block: (3x3 conv, lrelu, 3x3 conv, lrelu, 2x2 average pool) plus a
    pooled 1x1 skip, summed and scaled by 1/sqrt(2)."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        self.conv1, self.norm1 = EqualConv2d(cin, cin, 3), norm2d(norm, cin)
        self.conv2, self.norm2 = EqualConv2d(cin, cout, 3), norm2d(norm, cout)
        self.skip = EqualConv2d(cin, cout, 1, gain=1.0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        y = F.avg_pool2d(F.leaky_relu(self.norm2(self.conv2(y)), 0.2), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / SQRT2


def minibatch_stddev(x: Tensor, group: int = 4) -> Tensor:
    """Appends one feature map: the standard deviation over groups of samples, averaged over
    features and pixels (Karras et al. 2018, sec. 3; groups of 4 as in StyleGAN)."""
    n = x.shape[0]
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.view(g, n // g, *x.shape[1:])
    std = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (n // g,)
    std = std.repeat(g)[:, None, None, None].expand(n, 1, *x.shape[2:])
    return torch.cat([x, std], dim=1)


class StyleCritic(Critic):
    """fromRGB -> residual blocks down to the constant's size -> minibatch stddev -> 3x3 conv ->
    linear features; the head is a linear logit. Equalised learning rate throughout. Built as the
    registry builds nets (``nets.d_width``, the resolved D norm)."""

    # its features read the whole batch (minibatch stddev): no encoder trunk, no second minibatch layer
    batch_coupled: ClassVar[bool] = True
    spectral_norm_applies: ClassVar[bool] = False  # equalised layers: add_spectral_norm finds no layer to wrap

    def __init__(self, nets: Any, shape: tuple[int, ...], norm: str):
        super().__init__()
        channels, size = image_shape(shape, "style")
        width = int(nets.d_width)
        start, steps = style_levels(size)
        widths = level_widths(width, steps)
        self.from_rgb = EqualConv2d(channels, widths[steps], 1)
        self.blocks = nn.Sequential(*[ResidualDown(widths[i], widths[i - 1], norm) for i in range(steps, 0, -1)])
        self.conv = EqualConv2d(widths[0] + 1, widths[0], 3)
        self.feature_dim = widths[0]
        self.fc = EqualLinear(widths[0] * start * start, widths[0])
        self.head = EqualLinear(widths[0], 1, gain=1.0)

    def features(self, x: Tensor) -> Tensor:
        x = self.blocks(F.leaky_relu(self.from_rgb(x), 0.2))
        x = F.leaky_relu(self.conv(minibatch_stddev(x)), 0.2)
        return F.leaky_relu(self.fc(x.flatten(1)), 0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
