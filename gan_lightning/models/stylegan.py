"""StyleGAN (Karras et al. 2019) with StyleGAN2's regularisers (Karras et al. 2020) on the shared
GAN loop: the D and G steps are the loop's; what differs comes through its hooks.

- ``make_fake``: z -> w by the mapping net; style mixing (two w's and a crossover layer per
  sample, with probability ``model.mixing``); G's noise inputs drawn from the per-rank noise;
- ``g_terms``: the running mean of w (a buffer of G, for truncation), updated once per G step
  from the G step's batch, so its decay is per G iteration whatever n_critic; path-length
  regularisation, lazily every ``model.pl_every`` G steps with its weight multiplied by that
  interval. Under DDP both running means (w_avg, the path lengths' a) follow the global batch's
  mean (per-rank sums and counts all-reduced), so every rank holds the same values;
- lazy R1 is the loop's generic ``model.penalty.every`` (the paper defaults: r1, every 16);
- ``truncated``: sampling with w' = w_avg + psi (w - w_avg) (``sample --truncation PSI``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.distributed import global_mean
from gan_lightning.models.gan import GAN, Fake, GANConfig, Judged, Terms
from gan_lightning.nets.style import StyleGenerator, Truncated, check_style_options
from gan_lightning.registry import MODELS, ConfigError


@dataclass
class StyleGANConfig(GANConfig):
    name: str = "stylegan"
    mixing: float = 0.9  # style mixing regularisation: share of samples made from two w's (Karras et al. 2019, 3.1)
    pl_weight: float = 2.0  # path-length regularisation weight (Karras et al. 2020, 3.2); 0: off
    pl_every: int = 4  # lazy: on every k-th G step with weight x k (Karras et al. 2020, 4)
    pl_decay: float = 0.01  # of the running mean a of the path lengths (Karras et al. 2020, 3.2)
    w_avg_decay: float = 0.995  # running mean of w for truncation: w_avg <- 0.995 w_avg + 0.005 mean(w)


def crossover(u: Tensor, num_ws: int, p: float) -> Tensor:
    """Per sample, the first style input that takes the second w: uniform on 1..num_ws-1 with
    probability ``p``, else ``num_ws`` (no mixing); ``u`` is (n, 2) uniform [0, 1) noise."""
    cut = (1 + (u[:, 1] * (num_ws - 1)).long()).clamp_max(num_ws - 1)
    return torch.where(u[:, 0] < p, cut, torch.full_like(cut, num_ws))


def mix_styles(w1: Tensor, w2: Tensor, cut: Tensor, num_ws: int) -> Tensor:
    """(n, num_ws, w_dim) styles: w1 before each sample's crossover index ``cut``, w2 from it on."""
    second = torch.arange(num_ws, device=cut.device)[None, :] >= cut[:, None]  # (n, num_ws)
    return torch.where(second[:, :, None], w2[:, None, :], w1[:, None, :])


def path_lengths(x: Tensor, ws: Tensor, y: Tensor) -> Tensor:
    """||J_w^T y|| per sample, J_w the Jacobian of the images ``x`` with respect to the styles
    ``ws`` (N, num_ws, w_dim) they were made from: the squared norm summed over w's coordinates
    and averaged over the style inputs (Karras et al. 2020, eq. 4). Differentiable."""
    (grad,) = torch.autograd.grad((x * y).sum(), ws, create_graph=True)
    return grad.square().sum(2).mean(1).sqrt()


@MODELS.register("stylegan")
class StyleGAN(GAN):
    """StyleGAN2 (Karras et al. 2020) on the shared loop: a style-based generator (``nets.g=style``:
    mapping net, modulated/demodulated convs or ``nets.style_norm=adain``, noise inputs, skip
    toRGB outputs), the non-saturating loss, lazy R1 on reals (gamma 0.01, every 16 D steps),
    lazy path-length regularisation (weight 2, every 4 G steps), style mixing (0.9), an EMA of G,
    a tracked mean w and the truncation trick for sampling. Adam lr 2.5e-3, betas (0, 0.99)."""

    Config = StyleGANConfig
    # lazy regularisation picks its steps by counters, which perf.fast's replayed graphs cannot
    fast_path = False
    feeds_noise_inputs = True  # make_fake passes the per-rank noise to the style generator's noise inputs
    truncation_trick = True  # w' = w_avg + psi (w - w_avg)
    defaults: ClassVar[dict[str, Any]] = {
        "model": {
            "loss": "nonsaturating",
            # R1 weight gamma = 0.01 for 32x32: StyleGAN2-ADA's CIFAR-10 setting (Karras et al. 2020b);
            # penalties.r1 is 1/2 E||grad D||^2, so the weight is gamma
            "penalty": {"name": "r1", "weight": 0.01, "every": 16},
            "ema": {"decay": 0.999},
        },
        "nets": {"g": "style", "d": "style"},
        # lazy_adjust: lr x k/(k+1), betas ^ k/(k+1) for R1's and path length's intervals (Karras et al. 2020, B)
        "optim": {
            "name": "adam",
            "lr_g": 2.5e-3,
            "lr_d": 2.5e-3,
            "betas": [0.0, 0.99],
            "eps": 1e-8,
            "lazy_adjust": True,
        },
    }
    G: StyleGenerator
    pl_mean: Tensor

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        assert isinstance(self.G, StyleGenerator)  # validate: nets.g=style
        self.register_buffer("pl_mean", torch.zeros(()))  # a of Karras et al. 2020, eq. 4

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        m, nets = cfg.model, cfg.nets
        if nets.g != "style":  # first: the generic checks of the nets would be about a net it does not use
            raise ConfigError(
                f"bad value for 'nets.g': model 'stylegan' maps z to per-layer styles and needs the style-based "
                f"generator, not '{nets.g}'; use nets.g=style"
            )
        super().validate(cfg)
        checks = [
            (
                nets.g_norm != "virtual_batch",
                "nets.g_norm",
                "the style generator normalises by nets.style_norm; drop nets.g_norm=virtual_batch",
            ),
            (0 <= m.mixing <= 1, "model.mixing", f"a probability in [0, 1], got {m.mixing}"),
            (m.pl_weight >= 0, "model.pl_weight", f"must be >= 0 (0 turns it off), got {m.pl_weight}"),
            (m.pl_every >= 1, "model.pl_every", f"must be >= 1 G steps, got {m.pl_every}"),
            (0 < m.pl_decay <= 1, "model.pl_decay", f"in (0, 1], got {m.pl_decay}"),
            (0 <= m.w_avg_decay < 1, "model.w_avg_decay", f"in [0, 1), got {m.w_avg_decay}"),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")
        check_style_options(nets.style_norm, nets.style_mapping_layers)

    def lazy_intervals(self) -> tuple[int, int]:
        """G's interval is path length's ``model.pl_every`` (1 when it is off)."""
        m = self.mcfg
        return int(m.pl_every) if m.pl_weight > 0 else 1, super().lazy_intervals()[1]

    # ------------------------------------------------------------------ hooks of the loop
    def make_fake(self, n: int) -> Fake:
        """G's batch from two w's per sample mixed at a random crossover; ``codes``: (the styles,
        G's images) for ``g_terms`` (D may see the images augmented)."""
        assert self.noise is not None  # set up in on_fit_start
        g, m = self.G, self.mcfg
        w = g.mapping(self.noise.normal(2 * n, self.z_dim))
        w1, w2 = w[:n], w[n:]
        ws = mix_styles(w1, w2, crossover(self.noise.uniform(n, 2), g.num_ws, float(m.mixing)), g.num_ws)
        x = g.synthesis(ws, self.noise.normal)
        return Fake(x, codes=(ws, x))

    def g_terms(self, fake: Judged) -> Terms:
        """Once per G step: w_avg follows the batch's first w's (the first style input always takes
        w1); path-length regularisation on G's batch, on G steps 0, k, 2k... with weight x k."""
        m = self.mcfg
        ws, x = fake.codes
        self.G.track_w_avg(global_mean(ws[:, 0].detach()), float(m.w_avg_decay))
        if m.pl_weight == 0 or self.g_step % int(m.pl_every) != 0:
            return Terms()
        penalty, lengths = self.path_length_penalty(x, ws)
        stats = {"g/path_length": lengths.detach().mean(), "g/pl_penalty": penalty.detach()}
        return Terms(m.pl_weight * m.pl_every * penalty, stats)

    def path_length_penalty(self, x: Tensor, ws: Tensor) -> tuple[Tensor, Tensor]:
        """((||J_w^T y|| - a)^2 averaged, the lengths) with y ~ N(0, I) / sqrt(H W) (so the length
        does not grow with the image size) and a the running mean of the lengths, updated first:
        a <- a + decay (mean length - a) (Karras et al. 2020, sec. 3.2), the mean over every rank's batch."""
        assert self.noise is not None  # set up in on_fit_start
        y = self.noise.normal(*x.shape) / math.sqrt(x.shape[2] * x.shape[3])
        lengths = path_lengths(x, ws, y)
        with torch.no_grad():
            self.pl_mean.lerp_(global_mean(lengths.detach()).to(self.pl_mean.dtype), float(self.mcfg.pl_decay))
        return (lengths - self.pl_mean).square().mean(), lengths

    def truncated(
        self, z: Tensor, net: nn.Module, psi: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, nn.Module]:
        """The same z through G with w' = w_avg + psi (w - w_avg) (Karras et al. 2019, sec. 3.3)."""
        if not isinstance(net, StyleGenerator):
            raise ConfigError("bad value for '--truncation': it needs the style generator's mapping to w")
        return z, Truncated(net, psi)
