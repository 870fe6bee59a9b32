"""Progressive growing of GANs (Karras et al. 2018) on the shared GAN loop.

The D and G steps are the loop's; what differs comes through its hooks:

- the stage: ``model.stage_steps`` G steps per phase; a 4x4 phase, then for each doubling up to the
  data's size a fade-in phase (alpha from 0 to 1 linearly) and a stabilising one (alpha 1); after
  the last one training stays at full size. Level and alpha are a function of the G step counter
  alone (``stage_at``), so a resumed run continues the schedule exactly;
- ``make_fake``: G at the stage's level and alpha; ``make_real``: real images average-pooled to that
  resolution and, while fading in, blended like G's output; ``discriminate``: D with the alpha (its
  level is its input's size); the gradient penalty then acts at the stage's resolution;
- ``d_terms``: the drift term epsilon * E[D(x)^2] (sec. A.1); ``g_terms`` logs the stage
  (``progan/res``, ``progan/alpha``);
- ``generate``: the stage of the last trained step, upsampled (nearest) to the data's size, so
  sampling, grids and metrics see full-size images at every stage.

Optimizers: every layer exists from step 0 and its parameters are in Adam from the start; layers
the current stage does not use get no gradient, and Adam skips parameters without one, so a new
layer's moments start from zero when it first enters (the paper resets Adam when a layer appears;
here the older layers keep their moments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.models.gan import GAN, Fake, GANConfig, Judged, Terms
from gan_lightning.nets import DISCRIMINATORS, GENERATORS
from gan_lightning.nets.progan import START, can_grow, progan_levels, real_at
from gan_lightning.registry import MODELS, ConfigError

# the paper's 800k real images per phase (sec. A.1) at its minibatch of 16 for 4x4 to 128x128
PAPER_STAGE_STEPS = 800_000 // 16


def stage_at(g_step: int, stage_steps: int, levels: int) -> tuple[int, float]:
    """(level, alpha) of G step ``g_step`` (0-based): phase p = g_step // stage_steps; p = 0 is 4x4;
    odd p = 2k - 1 fades level k in (alpha = steps into the phase / stage_steps, from 0); even p = 2k
    stabilises level k (alpha 1); from phase 2 * levels on, the full size with alpha 1."""
    phase = g_step // stage_steps
    if phase == 0:
        return 0, 1.0
    if phase >= 2 * levels:
        return levels, 1.0
    level = (phase + 1) // 2
    alpha = (g_step - phase * stage_steps) / stage_steps if phase % 2 == 1 else 1.0
    return level, alpha


@dataclass
class ProGANConfig(GANConfig):
    name: str = "progan"
    stage_steps: int = PAPER_STAGE_STEPS  # G steps per fade-in and per stabilising phase
    drift: float = 0.001  # epsilon_drift of the drift term epsilon * E[D(x)^2] (sec. A.1)


@MODELS.register("progan")
class ProGAN(GAN):
    """Karras et al. 2018: G and D grown from 4x4 to the data's size by fading in one doubling at a
    time; equalised learning rate, pixel norm in G, minibatch stddev in D (``nets.g/d=progan``);
    WGAN-GP (lambda 10, one D step per G step) plus the drift term (epsilon 0.001); Adam lr 1e-3,
    betas (0, 0.99); an EMA of G (0.999) for sampling."""

    Config = ProGANConfig
    # the nets' graph changes with the stage, which perf.fast's replayed steps cannot follow
    fast_path = False
    defaults: ClassVar[dict[str, Any]] = {
        "model": {
            "loss": "wasserstein",
            "n_critic": 1,
            "penalty": {"name": "gp", "weight": 10.0},
            "ema": {"decay": 0.999},
        },
        "nets": {"g": "progan", "d": "progan"},
        "optim": {"name": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.0, 0.99], "eps": 1e-8},
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)  # the nets refuse data that is not square images of 4*2^k pixels
        self.levels = progan_levels(int(self.info.shape[-1]))

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m, nets = cfg.model, cfg.nets
        checks = [
            (
                can_grow(GENERATORS.get(nets.g, "nets.g")),
                "nets.g",
                f"model 'progan' runs G at each stage's resolution, which '{nets.g}' cannot; use nets.g=progan",
            ),
            (
                can_grow(DISCRIMINATORS.get(nets.d, "nets.d")),
                "nets.d",
                f"model 'progan' runs D at each stage's resolution, which '{nets.d}' cannot; use nets.d=progan",
            ),
            (m.stage_steps >= 1, "model.stage_steps", f"must be >= 1 G steps per phase, got {m.stage_steps}"),
            (m.drift >= 0, "model.drift", f"must be >= 0 (0 turns the drift term off), got {m.drift}"),
            (not m.sn_g, "model.sn_g", "spectral norm does not reach the progan nets' equalised layers"),
            (not m.sn_d, "model.sn_d", "spectral norm does not reach the progan nets' equalised layers"),
            (
                m.unroll == 0,
                "model.unroll",
                "the unrolled copies of D run at full size without the stage's fade-in; use model.unroll=0",
            ),
            (
                not m.feature_matching,
                "model.feature_matching",
                "D's features are read without the stage's fade-in; use model.feature_matching=false",
            ),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")
        size = cfg.data.get("image_size")
        if size is not None:
            progan_levels(int(size))

    # ------------------------------------------------------------------ the stage
    @property
    def stage(self) -> tuple[int, float]:
        """(level, alpha) of the G step being trained (``g_step`` counts the steps done)."""
        return stage_at(self.g_step, int(self.mcfg.stage_steps), self.levels)

    @property
    def sampling_stage(self) -> tuple[int, float]:
        """(level, alpha) of the last trained step (4x4 before any): what sampling uses."""
        return stage_at(max(self.g_step - 1, 0), int(self.mcfg.stage_steps), self.levels)

    # ------------------------------------------------------------------ hooks of the loop
    def make_fake(self, n: int) -> Fake:
        assert self.noise is not None  # set up in on_fit_start
        level, alpha = self.stage
        return Fake(self.G(self.noise.normal(n, self.z_dim), level, alpha))

    def make_real(self, x: Tensor) -> Tensor:
        level, alpha = self.stage
        return real_at(x, level, alpha)

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        return self.D(self.pack(x), self.stage[1]), None

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        """The drift term epsilon * E[D(x)^2] on real data: keeps the critic's output near 0."""
        eps = float(self.mcfg.drift)
        if eps == 0:
            return Terms()
        drift = real.out.square().mean()
        return Terms(eps * drift, {"d/drift": drift.detach()})

    def g_terms(self, fake: Judged) -> Terms:
        """No extra loss; the stage of this step, logged beside the losses."""
        level, alpha = self.stage
        ref = fake.out.detach()
        stage = {"progan/res": ref.new_tensor(START * 2**level), "progan/alpha": ref.new_tensor(alpha)}
        return Terms(0.0, stage)

    def generate(self, z: Tensor, net: nn.Module | None = None, y: Tensor | None = None) -> Tensor:
        """G(z) at the stage of the last trained step, upsampled (nearest) to the data's size."""
        net = net or self.generator_for_sampling()
        level, alpha = self.sampling_stage
        x = net(z, level, alpha)
        size = int(self.info.shape[-1])
        return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="nearest")
