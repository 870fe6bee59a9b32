"""Data-efficient GAN training: augmentations of everything D sees (``model.augment``).

With little data D memorises the training set and its feedback to G degrades. Both methods
below augment *real and generated* images alike, every time D sees them (its own step and G's),
with differentiable ops so G's gradient flows through the augmentation; D then judges the
augmented distributions, which match exactly when G matches the data.

- ``diffaugment`` (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
  Training"): every op of the policy ``model.augment_policy`` applied to every sample; ``color``
  (brightness, saturation, contrast), ``translation`` (up to 1/8 of the image, zero fill) and
  ``cutout`` (a square of half the image side, zero fill).
- ``ada`` (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"):
  each op applied to each sample with probability p, which an overfitting heuristic steers:
  r_t = E[sign(D(x_real))] over ``ada_interval`` D steps (the paper: 4 minibatches), then
  p += sign(r_t - target) * (real images in those steps) / (ada_kimg * 1000), clamped to [0, 1]
  (the paper: target 0.6, p from 0 to 1 in 500k images).

  Ops here, in the paper's pipeline order (a subset of its "bgc" pipeline; parameters as in its
  appendix): x-flip (i ~ U{0, 1}), 90-degree rotations (k ~ U{0, 1, 2, 3}; square images),
  integer translation (t ~ U(-1/8, 1/8) of the size, rounded; zero fill where the paper reflects),
  brightness (b ~ N(0, 0.2^2), added), contrast (c ~ lognormal(0, (0.5 ln 2)^2), scaling the
  values about 0, the mid-grey of model space [-1, 1], as the paper's colour matrices do, where
  DiffAugment's contrast scales about each image's mean), saturation (s ~ lognormal(0, (ln 2)^2),
  around the mean over channels, where the paper works in a luma colour space; identity on one
  channel) and cutout (half-side square, centre uniform). Not here: the arbitrary-angle/scale
  geometric ops, luma flip, hue, the filters and additive noise.

Every draw comes from the model's per-rank noise source (one uniform and at most one normal draw
of fixed shape per call, whatever p), so reruns and resumes are bitwise equal and perf.fast can
tape them. ADA's p and its accumulators are buffers: in every checkpoint, identical on every rank
(the per-step sums are all-reduced under DDP).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.distributed import sum_over_ranks_
from gan_lightning.registry import ConfigError, Registry


# ----------------------------------------------------------------------------- the ops, as maths
def _per_sample(v: Tensor) -> Tensor:
    return v.reshape(-1, 1, 1, 1)


def brightness(x: Tensor, b: Tensor) -> Tensor:
    """x + b, one offset per sample."""
    return x + _per_sample(b)


def saturation(x: Tensor, s: Tensor) -> Tensor:
    """Each pixel's deviation from its mean over channels scaled by s (one channel: identity)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(s) + mean


def contrast(x: Tensor, c: Tensor) -> Tensor:
    """Each sample's deviation from its mean over (C, H, W) scaled by c (DiffAugment's contrast)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(c) + mean


def contrast_about_grey(x: Tensor, c: Tensor) -> Tensor:
    """Each sample scaled by c about 0, the mid-grey of model space [-1, 1] (ADA's contrast: its
    colour transform scales all three channels by c, Karras et al. 2020, appendix B)."""
    return x * _per_sample(c)


def translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """out[n, :, i, j] = x[n, :, i - ty[n], j - tx[n]], zero where that falls outside the image
    (integer shifts; +tx moves content right, +ty down)."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) - ty.reshape(-1, 1)  # (N, H) source row of each row
    cols = torch.arange(w, device=x.device) - tx.reshape(-1, 1)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    out = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(n, c, h, w))
    return torch.where(inside[:, None], out, torch.zeros_like(out))


def cutout(x: Tensor, cy: Tensor, cx: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero the size (h, w) rectangle whose rows are [cy - h//2, cy - h//2 + h) (columns alike),
    clipped to the image; cy, cx per sample."""
    h, w = size
    top, left = (cy - h // 2).reshape(-1, 1), (cx - w // 2).reshape(-1, 1)
    r, q = torch.arange(x.shape[2], device=x.device), torch.arange(x.shape[3], device=x.device)
    in_rows, in_cols = (r >= top) & (r < top + h), (q >= left) & (q < left + w)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return torch.where(hole[:, None], torch.zeros_like(x), x)


def xflip(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the samples where ``flip`` (bool, per sample) is set."""
    return torch.where(_per_sample(flip), x.flip(3), x)


def rot90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate sample n by k[n] * 90 degrees (counter-clockwise, torch.rot90's sense); square images."""
    out = x
    for turns in (1, 2, 3):
        out = torch.where(_per_sample(k == turns), torch.rot90(x, turns, dims=(2, 3)), out)
    return out


# ----------------------------------------------------------------------------- ops with their draws
@dataclass(frozen=True)
class Dist:
    """A per-sample parameter from one U[0, 1) (``uniform``) or N(0, 1) (``normal``) number r:
    shift + scale * r, exponentiated when ``log`` (a lognormal)."""

    kind: str
    scale: float
    shift: float = 0.0
    log: bool = False

    def __call__(self, r: Tensor) -> Tensor:
        v = self.shift + self.scale * r
        return v.exp() if self.log else v


def uniform(low: float, high: float) -> Dist:
    return Dist("uniform", high - low, low)


class Op:
    """A random per-sample transform of images (N, C, H, W), differentiable in x. It reads
    ``uniforms`` U[0, 1) and ``normals`` N(0, 1) numbers per sample (columns of u and g)."""

    uniforms: int = 0
    normals: int = 0
    square_only: ClassVar[bool] = False  # defined for H == W only

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        raise NotImplementedError


class Colour(Op):
    """brightness, saturation or contrast with its parameter drawn from ``dist``."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], dist: Dist):
        self.fn, self.dist = fn, dist
        self.uniforms, self.normals = int(dist.kind == "uniform"), int(dist.kind == "normal")

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        return self.fn(x, self.dist((u if self.uniforms else g)[:, 0]))

    def __repr__(self) -> str:
        return f"{self.fn.__name__}({self.dist})"


class Translation(Op):
    """Integer shifts t ~ U{-s, ..., s} per axis, s = round(ratio * size), zero fill."""

    uniforms = 2

    def __init__(self, ratio: float = 0.125):
        self.ratio = ratio

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        sy, sx = (int(self.ratio * d + 0.5) for d in x.shape[2:])
        ty = (u[:, 0] * (2 * sy + 1)).floor().long().clamp(max=2 * sy) - sy
        tx = (u[:, 1] * (2 * sx + 1)).floor().long().clamp(max=2 * sx) - sx
        return translate(x, tx, ty)


class Cutout(Op):
    """A zeroed rectangle of ``ratio`` times the image's sides, its centre uniform over the pixels."""

    uniforms = 2

    def __init__(self, ratio: float = 0.5):
        self.ratio = ratio

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        h, w = x.shape[2:]
        cy = (u[:, 0] * h).floor().long().clamp(max=h - 1)
        cx = (u[:, 1] * w).floor().long().clamp(max=w - 1)
        return cutout(x, cy, cx, (int(self.ratio * h + 0.5), int(self.ratio * w + 0.5)))


class XFlip(Op):
    """Mirror with probability 1/2 (i ~ U{0, 1})."""

    uniforms = 1

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        return xflip(x, u[:, 0] < 0.5)


class Rot90(Op):
    """Rotate by k * 90 degrees, k ~ U{0, 1, 2, 3}."""

    uniforms = 1
    square_only = True

    def __call__(self, x: Tensor, u: Tensor, g: Tensor) -> Tensor:
        return rot90(x, (u[:, 0] * 4).floor().long().clamp(max=3))


# DiffAugment's policies (Zhao et al. 2020; the colour ranges are those of their release:
# brightness +U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5) for images in [-1, 1])
DIFFAUGMENT_POLICIES: Registry[tuple[Op, ...]] = Registry("DiffAugment policy")
DIFFAUGMENT_POLICIES.register("color")(
    (Colour(brightness, uniform(-0.5, 0.5)), Colour(saturation, uniform(0.0, 2.0)), Colour(contrast, uniform(0.5, 1.5)))
)
DIFFAUGMENT_POLICIES.register("translation")((Translation(0.125),))
DIFFAUGMENT_POLICIES.register("cutout")((Cutout(0.5),))

# ADA's ops in its pipeline order: blit, colour, cutout (Karras et al. 2020, appendix B)
ADA_OPS: tuple[Op, ...] = (
    XFlip(),
    Rot90(),
    Translation(0.125),
    Colour(brightness, Dist("normal", 0.2)),
    Colour(contrast_about_grey, Dist("normal", 0.5 * math.log(2.0), log=True)),
    Colour(saturation, Dist("normal", math.log(2.0), log=True)),
    Cutout(0.5),
)


def apply_ops(ops: Sequence[Op], x: Tensor, u: Tensor, g: Tensor, gates: Tensor | None = None) -> Tensor:
    """Each op in turn on its own columns of u and g; with ``gates`` (bool (N, len(ops))), op i
    changes only the samples whose gate i is set."""
    iu = ig = 0
    for i, op in enumerate(ops):
        y = op(x, u[:, iu : iu + op.uniforms], g[:, ig : ig + op.normals])
        x = y if gates is None else torch.where(_per_sample(gates[:, i]), y, x)
        iu, ig = iu + op.uniforms, ig + op.normals
    return x


# ----------------------------------------------------------------------------- the pipelines
class Augment(nn.Module):
    """What D sees: ``forward(x, noise)`` augments a batch; ``observe(real_out, n_images)``
    hears D's outputs on real data after each D step and returns stats to log."""

    adaptive: ClassVar[bool] = False  # its strength follows D's outputs (``observe``)
    ops: Sequence[Op] = ()  # applied in this order
    # what the loss must offer: ADA reads sign(D(x) - the loss's decision value)
    needs_decision: ClassVar[bool] = False

    def __init__(self, m: DictConfig, decision: float | None):
        super().__init__()

    @classmethod
    def validate(cls, m: DictConfig) -> None:
        """Checks of this method's config keys."""

    def forward(self, x: Tensor, noise: Any) -> Tensor:
        return x

    def observe(self, real_out: Tensor, n_images: int) -> dict[str, Tensor]:
        return {}


AUGMENTS: Registry[type[Augment]] = Registry("augmentation")
AUGMENTS.register("none")(Augment)


def draw_and_apply(ops: Sequence[Op], x: Tensor, noise: Any, gated: bool, p: Tensor | None = None) -> Tensor:
    """One uniform draw (gates first when ``gated``, then the ops' columns) and at most one normal
    draw, of fixed shapes, from the model's noise source; then the ops."""
    n = x.shape[0]
    n_u = sum(op.uniforms for op in ops) + (len(ops) if gated else 0)
    n_g = sum(op.normals for op in ops)
    u = noise.uniform(n, n_u)
    g = noise.normal(n, n_g) if n_g else u[:, :0]
    gates = None
    if gated:
        assert p is not None
        gates, u = u[:, : len(ops)] < p, u[:, len(ops) :]
    return apply_ops(ops, x, u.to(x.dtype), g.to(x.dtype), gates)


@AUGMENTS.register("diffaugment")
class DiffAugment(Augment):
    """Zhao et al. 2020: every op of ``model.augment_policy`` on every sample D sees."""

    def __init__(self, m: DictConfig, decision: float | None):
        super().__init__(m, decision)
        self.ops = [op for name in policy_names(m) for op in DIFFAUGMENT_POLICIES.get(name, "model.augment_policy")]

    @classmethod
    def validate(cls, m: DictConfig) -> None:
        names = policy_names(m)
        if not names or len(set(names)) != len(names):
            raise ConfigError(
                f"bad value for 'model.augment_policy': a comma-separated list of distinct policies "
                f"({', '.join(DIFFAUGMENT_POLICIES.names())}), got '{m.augment_policy}'"
            )
        for name in names:
            DIFFAUGMENT_POLICIES.get(name, "model.augment_policy")

    def forward(self, x: Tensor, noise: Any) -> Tensor:
        return draw_and_apply(self.ops, x, noise, gated=False)


def policy_names(m: DictConfig) -> list[str]:
    return [s.strip() for s in str(m.augment_policy).split(",") if s.strip()]


@AUGMENTS.register("ada")
class ADA(Augment):
    """Karras et al. 2020: the ops of ``ADA_OPS``, each applied to each sample with probability p;
    p follows r_t = E[sign(D(x_real) - decision)] towards ``model.ada_target``."""

    adaptive = True
    needs_decision = True
    p: Tensor  # buffers
    rt: Tensor
    acc: Tensor
    d_steps: Tensor

    def __init__(self, m: DictConfig, decision: float | None):
        super().__init__(m, decision)
        assert decision is not None  # validate: the loss has a decision value
        self.ops = ADA_OPS
        self.decision, self.target = float(decision), float(m.ada_target)
        self.interval, self.images_to_one = int(m.ada_interval), float(m.ada_kimg) * 1000.0
        self.register_buffer("p", torch.tensor(float(m.ada_p_init)))
        self.register_buffer("rt", torch.zeros(()))  # r_t of the last completed interval
        self.register_buffer("acc", torch.zeros(3))  # this interval: sum of signs, outputs, real images
        self.register_buffer("d_steps", torch.zeros((), dtype=torch.long))  # D steps in this interval

    @classmethod
    def validate(cls, m: DictConfig) -> None:
        checks = [
            (0 < m.ada_target < 1, "model.ada_target", f"the target of E[sign(D(x))] is in (0, 1), got {m.ada_target}"),
            (m.ada_interval >= 1, "model.ada_interval", f"must be >= 1 D steps, got {m.ada_interval}"),
            (m.ada_kimg > 0, "model.ada_kimg", f"thousands of images for p to go 0 -> 1, > 0, got {m.ada_kimg}"),
            (0 <= m.ada_p_init <= 1, "model.ada_p_init", f"a probability in [0, 1], got {m.ada_p_init}"),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{key}': {msg}")

    def forward(self, x: Tensor, noise: Any) -> Tensor:
        return draw_and_apply(self.ops, x, noise, gated=True, p=self.p)

    @torch.no_grad()
    def observe(self, real_out: Tensor, n_images: int) -> dict[str, Tensor]:
        """Add this D step's signs (summed over ranks) to the interval; at its end, move p by
        sign(r_t - target) * images / (ada_kimg * 1000) and start the next. Tensor maths only
        (no host sync; perf.fast can replay it)."""
        signs = torch.sign(real_out.detach().float() - self.decision)
        step = torch.stack([signs.sum(), signs.new_full((), signs.numel()), signs.new_full((), n_images)])
        self.acc.add_(sum_over_ranks_(step))
        self.d_steps.add_(1)
        due = self.d_steps >= self.interval
        rt = self.acc[0] / self.acc[1].clamp_min(1.0)
        moved = (self.p + torch.sign(rt - self.target) * self.acc[2] / self.images_to_one).clamp(0.0, 1.0)
        self.p.copy_(torch.where(due, moved, self.p))
        self.rt.copy_(torch.where(due, rt, self.rt))
        self.acc.copy_(torch.where(due, torch.zeros_like(self.acc), self.acc))
        self.d_steps.copy_(torch.where(due, torch.zeros_like(self.d_steps), self.d_steps))
        return {"aug/p": self.p.clone(), "aug/rt": self.rt.clone()}


def build_augment(m: DictConfig, decision: float | None) -> Augment:
    """The augmentation ``model.augment`` names (validated by ``validate_augment``)."""
    return AUGMENTS.get(m.augment, "model.augment")(m, decision)


def validate_augment(m: DictConfig, decision: float | None, loss_name: str) -> type[Augment]:
    """Checks of ``model.augment`` and its keys; returns the class."""
    cls = AUGMENTS.get(m.augment, "model.augment")
    cls.validate(m)
    if cls.needs_decision and decision is None:
        raise ConfigError(
            f"bad value for 'model.augment': {m.augment} reads the sign of D's output on real data, which "
            f"has no fixed decision value under the '{loss_name}' loss (a Wasserstein critic is defined up to "
            "a constant, energies are positive); use model.augment=diffaugment, or a loss such as nonsaturating, "
            "hinge or least_squares"
        )
    return cls
