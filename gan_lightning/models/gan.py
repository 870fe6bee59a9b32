"""The GAN family on one loop: one D step and one G step for every adversarial model.

Loss, penalty, n_critic, weight clipping, spectral norm, label smoothing, EMA and the nets are
orthogonal config axes, each applied in exactly one place below. A variant changes what differs
through these hooks and nothing else:

- ``make_fake(n)``: G's samples, with the labels D sees beside them and any codes G was given
  (``make_critic_fake(n, y_real)`` for the D step: conditional models give the fakes the real labels);
- ``discriminate(x, y)``: D's adversarial output and whatever extra heads the variant reads;
- ``d_terms(real, fake)`` and ``g_terms(fake)``: extra loss terms (and stats) of each step;
- ``make_real(x)`` and ``g_adversarial(fake, real)``: real data as D sees it and the G step's
  adversarial loss (BiGAN/ALI: D judges (x, E(x)) and (G(z), z) pairs; G and E learn together).

The mode-collapse remedies are axes of the same loop: ``model.pack`` (PacGAN: D judges packs of
m samples), ``model.unroll`` (G's loss through k differentiable D updates), ``model.feature_matching``
(G matches D's mean features on real data), and the nets' ``d_minibatch`` and ``g_norm=virtual_batch``.

``model.augment`` (DiffAugment, ADA; gan_lightning/augment.py) changes what D sees, in one place:
``judge`` augments every batch, real and fake, per sample before packing, in both steps.

GAN, DCGAN, WGAN, WGAN-GP, LSGAN, SNGAN and DRAGAN only set their papers' defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.func import functional_call

from gan_lightning.augment import build_augment, validate_augment
from gan_lightning.data.base import Batch
from gan_lightning.distributed import several_devices
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import GANModule, OptimizerGroup
from gan_lightning.nets import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
    capability,
    takes_labels,
    validate_nets,
)
from gan_lightning.nets.layers import Critic, add_spectral_norm
from gan_lightning.penalties import PENALTIES, clip_weights_, penalty_from_config
from gan_lightning.precision import is_16bit_mixed
from gan_lightning.registry import MODELS, ConfigError
from gan_lightning.schema import EMAConfig, ModelConfig, PenaltyConfig


@dataclass
class GANConfig(ModelConfig):
    name: str = "gan"
    loss: str = "nonsaturating"  # minimax | nonsaturating | wasserstein | hinge | least_squares
    n_critic: int = 1  # D steps per G step
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    clip: float = 0.0  # WGAN weight clipping: D parameters into [-clip, clip] (0: off)
    label_smoothing: float = 0.0  # one-sided: real label 1 - s (Salimans et al. 2016)
    sn_d: bool = False  # spectral norm on every D layer (heads and class embeddings included)
    sn_g: bool = False
    ema: EMAConfig = field(default_factory=EMAConfig)
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges m samples concatenated; a D step takes m batches
    unroll: int = 0  # unrolled GAN (Metz et al. 2017): G's loss through k differentiable D updates
    feature_matching: bool = False  # G's loss: ||E f(x) - E f(G(z))||^2 on D's features (Salimans et al. 2016)
    # what D sees, real and fake, in both steps (gan_lightning/augment.py): none | diffaugment | ada
    augment: str = "none"
    augment_policy: str = "color,translation,cutout"  # diffaugment's ops (Zhao et al. 2020's low-data choice)
    ada_target: float = 0.6  # ada: target of r_t = E[sign(D(x_real))] (Karras et al. 2020)
    ada_interval: int = 4  # ada: D steps between updates of p
    ada_kimg: float = 500.0  # ada: thousands of real images for p to go from 0 to 1
    ada_p_init: float = 0.0  # ada: p at the start (the paper's 0)


@dataclass
class Fake:
    """A batch from G: images ``x``, the labels ``y`` D sees with them (conditional models) and
    the ``codes`` G was given that a variant's terms need (InfoGAN)."""

    x: Tensor
    y: Tensor | None = None
    codes: Any = None


@dataclass
class Judged:
    """A batch as D judged it: the images ``x`` as D saw them (augmented under ``model.augment``),
    adversarial output ``out`` and the variant's ``extra`` heads."""

    x: Tensor
    y: Tensor | None
    out: Tensor
    extra: Any = None
    codes: Any = None


@dataclass
class Terms:
    """Extra loss terms of a step, already weighted, and the stats to log beside them."""

    loss: Tensor | float = 0.0
    stats: dict[str, Tensor] = field(default_factory=dict)


def resolve_d_norm(cfg: DictConfig) -> str:
    """nets.d_norm=auto: no normalisation with a per-sample penalty or spectral norm, else batch
    (conv nets) / none (nets ``unnormalised_by_default``: the MLP critic). BatchNorm beside a
    per-sample penalty is refused (minibatch discrimination: ``validate_penalty``)."""
    norm, m = cfg.nets.d_norm, cfg.model
    per_sample = m.penalty.name != "none" and PENALTIES.get(m.penalty.name, "model.penalty.name").per_sample
    if norm == "auto":
        plain = capability(DISCRIMINATORS.get(cfg.nets.d, "nets.d"), "unnormalised_by_default")
        return "none" if per_sample or m.sn_d or plain else "batch"
    if norm == "virtual_batch":
        raise ConfigError(
            "bad value for 'nets.d_norm': virtual batch norm is a generator option (nets.g_norm); "
            "use nets.d_norm=batch, layer or none"
        )
    if norm == "batch" and per_sample:
        raise ConfigError(
            f"bad value for 'nets.d_norm': BatchNorm in the critic couples the samples of the per-sample "
            f"'{m.penalty.name}' penalty (Gulrajani et al. 2017); use nets.d_norm=layer or none"
        )
    return str(norm)


@MODELS.register("gan")
class GAN(GANModule):
    """Goodfellow et al. 2014, with the non-saturating G loss (``model.loss=minimax`` for the
    saturating one) and MLP nets."""

    Config = GANConfig
    defaults: ClassVar[dict[str, Any]] = {"nets": {"g": "mlp", "d": "mlp"}}
    fast_path = True  # every variant runs the shared steps below, which perf.fast replays
    lazy_penalty = True  # critic_step's penalty_due
    # D judges samples alone through a trunk and a head (a Critic): what packing, unrolling and
    # feature matching need. Models whose D also reads labels or codes say False.
    plain_critic: ClassVar[bool] = True
    # G takes z alone, so virtual batch norm can draw its reference batch of inputs as N(0, I)
    z_only_generator: ClassVar[bool] = True
    # D's outputs are energies (an autoencoder critic): only losses marked ``energy`` fit it
    energy_critic: ClassVar[bool] = False
    # class-conditional nets (a net class's ``takes_labels``: G(z, y), D(x, y)) fit this model
    labelled_nets: ClassVar[bool] = False
    d_steps: Tensor  # D steps done, a buffer registered with a lazy penalty (model.penalty.every > 1)

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        m = self.mcfg
        self.loss = LOSSES.get(m.loss, "model.loss")
        self.penalty = penalty_from_config(self.cfg)
        self.G, self.D = self.build_nets()
        if m.sn_d:  # once, on the whole critic: heads and embeddings a variant added are covered
            add_spectral_norm(self.D)
        if m.sn_g:
            add_spectral_norm(self.G)
        self.G_ema = self.make_ema(self.G, m.ema)
        if m.penalty.every > 1:  # a buffer: in the checkpoint, so a resumed run continues the cycle
            self.register_buffer("d_steps", torch.zeros((), dtype=torch.long))
        self.augment = build_augment(m, self.loss.decision)
        if m.augment != "none" and (self.info.kind != "image" or len(self.info.shape) != 3):
            raise ConfigError(f"bad value for 'model.augment': {m.augment} augments images, not {self.info.kind} data")
        square = len(self.info.shape) == 3 and self.info.shape[1] == self.info.shape[2]
        if not square and any(op.square_only for op in self.augment.ops):
            raise ConfigError(f"bad value for 'model.augment': {m.augment} rotates by 90 degrees: square images only")
        self._fast: tuple[Any, Any] | None = None

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        """(G, D) without spectral norm (applied by ``__init__``); D's input is a pack of samples."""
        nets, shape = self.cfg.nets, tuple(self.info.shape)
        g = build_generator(nets, shape, self.z_dim)
        packed = (shape[0] * int(self.mcfg.pack), *shape[1:])
        d = build_discriminator(nets, packed, resolve_d_norm(self.cfg))
        return g, d

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        for key, registry in (("g", GENERATORS), ("d", DISCRIMINATORS)):
            name = cfg.nets[key]
            if takes_labels(registry.get(name, f"nets.{key}")) and not cls.labelled_nets:
                raise ConfigError(
                    f"bad value for 'nets.{key}': '{name}' is a class-conditional net (it takes labels y), which "
                    f"model '{m.name}' does not feed; use model.name=cgan or biggan, or an unconditional net (dcgan)"
                )
            on = bool(m[f"sn_{key}"])
            if on and not capability(registry.get(name, f"nets.{key}"), "spectral_norm_applies", default=True):
                raise ConfigError(
                    f"bad value for 'model.sn_{key}': spectral norm wraps torch conv, linear and embedding layers, "
                    f"and nets.{key}={name} has none (equalised-lr layers), so it would do nothing; "
                    f"set model.sn_{key}=false, or use nets.{key}=dcgan"
                )
        validate_nets(cfg.nets, str(m.name), cls.feeds_noise_inputs)
        loss = LOSSES.get(m.loss, "model.loss")
        checks = [
            (m.n_critic >= 1, "model.n_critic", f"must be >= 1 D steps per G step, got {m.n_critic}"),
            (
                m.penalty.every == 1 or m.penalty.name != "none",
                "model.penalty.every",
                f"{m.penalty.every} sets how often a penalty applies, and model.penalty.name=none has none; "
                "set model.penalty.name (e.g. r1) or model.penalty.every=1",
            ),
            (
                m.penalty.every == 1 or not cfg.perf.fast,
                "model.penalty.every",
                "a lazy penalty applies on some D steps only, which perf.fast's replayed steps cannot; "
                "set model.penalty.every=1 or drop perf.fast",
            ),
            (m.clip >= 0, "model.clip", f"must be >= 0 (0 turns clipping off), got {m.clip}"),
            (0 <= m.label_smoothing < 0.5, "model.label_smoothing", f"in [0, 0.5), got {m.label_smoothing}"),
            (
                loss.energy == cls.energy_critic,
                "model.loss",
                f"'{m.loss}' "
                + (
                    "is for the autoencoder critics of ebgan/began"
                    if loss.energy
                    else f"does not fit model '{m.name}', whose D gives energies: use model.loss=energy"
                ),
            ),
            (
                m.label_smoothing == 0 or loss.smoothable,
                "model.label_smoothing",
                f"label smoothing has no meaning for the '{m.loss}' loss (no labels)",
            ),
        ]
        checks += [
            (m.pack >= 1, "model.pack", f"must be >= 1 samples per pack (1: no packing), got {m.pack}"),
            (m.unroll >= 0, "model.unroll", f"must be >= 0 unrolled D steps (0: none), got {m.unroll}"),
        ]
        for ok, name, msg in checks:
            if not ok:
                raise ConfigError(f"bad value for '{name}': {msg}")
        cls.validate_remedies(cfg)
        validate_augment(m, loss.decision, m.loss)
        if m.augment != "none" and (m.unroll > 0 or m.feature_matching):
            raise ConfigError(
                f"bad value for 'model.{'unroll' if m.unroll else 'feature_matching'}': it reads D outside the "
                f"loop's one augmented view, so it does not combine with model.augment={m.augment}; drop one of them"
            )
        resolve_d_norm(cfg)

    @classmethod
    def validate_remedies(cls, cfg: DictConfig) -> None:
        """Packing, unrolling and feature matching need a plain critic; unrolling differentiates
        plain D updates, so it refuses what those updates would not carry."""
        m = cfg.model
        if cfg.nets.g_norm == "virtual_batch" and not cls.z_only_generator:
            raise ConfigError(
                f"bad value for 'nets.g_norm': model '{m.name}' feeds G labels or codes beside z, which virtual "
                "batch norm's reference batch of N(0, I) inputs does not cover; use nets.g_norm=batch or none"
            )
        remedies = (("pack", m.pack > 1), ("unroll", m.unroll > 0), ("feature_matching", m.feature_matching))
        used = [key for key, on in remedies if on]
        if used and not cls.plain_critic:
            raise ConfigError(
                f"bad value for 'model.{used[0]}': model '{m.name}' has a D that also reads labels or codes, "
                "which packing, unrolling and feature matching do not cover; use a model of the GAN family"
            )
        if (m.unroll > 0 or m.feature_matching) and several_devices(cfg.trainer):
            raise ConfigError(
                f"bad value for 'trainer.devices': model.{'unroll' if m.unroll else 'feature_matching'} runs on one "
                "device for now (its D gradients / feature means would be one rank's, not the global batch's)"
            )
        if m.unroll == 0:
            return
        refusals = [
            (m.penalty.name != "none", "model.penalty.name", "a penalty (its double backward would be nested in G's)"),
            (m.clip > 0, "model.clip", "weight clipping (a projection the unrolled steps do not make)"),
            (m.sn_d, "model.sn_d", "spectral norm (its power iteration updates buffers in place)"),
            (resolve_d_norm(cfg) == "batch", "nets.d_norm", "BatchNorm in D (running statistics change in place)"),
            (m.feature_matching, "model.feature_matching", "feature matching (it replaces the unrolled loss)"),
            (cfg.optim.name not in ("adam", "sgd"), "optim.name", f"optim.name={cfg.optim.name} (adam and sgd unroll)"),
            (bool(cfg.perf.fast), "perf.fast", "the fast path (its replay of the unrolled graph is not verified)"),
            (
                is_16bit_mixed(cfg),
                "trainer.precision",
                "16-bit mixed precision (the unrolled D gradients are not loss-scaled); use 32-true or bf16-mixed",
            ),
        ]
        for bad, key, what in refusals:
            if bad:
                raise ConfigError(f"bad value for '{key}': model.unroll={m.unroll} does not combine with {what}")

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.trainer.world_size > 1 and (self.mcfg.unroll > 0 or self.mcfg.feature_matching):
            raise ConfigError("model.unroll and model.feature_matching run on one device for now; drop trainer.devices")

    @property
    def real_batches_per_step(self) -> int:
        """n_critic D steps, each on ``pack`` batches (its packs of real samples)."""
        return int(self.mcfg.n_critic) * int(self.mcfg.pack)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        o, (every_g, every_d) = self.cfg.optim, self.lazy_intervals()
        return [
            OptimizerGroup(self.g_parameters(), o.lr_g, every_g),
            OptimizerGroup(self.D.parameters(), o.lr_d, every_d),
        ]

    def lazy_intervals(self) -> tuple[int, int]:
        """(G's, D's) lazy regularisation interval k, 1 where none (``optim.lazy_adjust``): D's is
        ``model.penalty.every``; a variant with a lazy G regulariser gives G's."""
        return 1, int(self.mcfg.penalty.every) if self.penalty is not None else 1

    def g_parameters(self) -> list[nn.Parameter]:
        """What G's optimizer trains (G; InfoGAN's Q is part of D and trains with it)."""
        return list(self.G.parameters())

    # ------------------------------------------------------------------ hooks of the variants
    def make_fake(self, n: int) -> Fake:
        assert self.noise is not None  # set up in on_fit_start
        return Fake(self.G(self.noise.normal(n, self.z_dim)))

    def make_critic_fake(self, n: int, y_real: Tensor) -> Fake:
        """G's samples for a D step beside a real batch labelled ``y_real``: ``make_fake`` (conditional
        models give the fakes the real labels)."""
        return self.make_fake(n)

    def make_real(self, x: Tensor) -> Tensor:
        """Real data as D judges it, in the D step (no gradient) and in ``g_adversarial``."""
        return x

    def g_adversarial(self, fake: Judged, real: Tensor) -> Tensor:
        """The G step's adversarial loss, of D's judgement of G's batch (``real``: the last D
        step's real batch, for variants whose G step also judges real data)."""
        return self.loss.g_loss(fake.out)

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Any]:
        """(D's adversarial output, extra heads for ``d_terms``/``g_terms``)."""
        return self.D(self.pack(x)), None

    def pack(self, x: Tensor) -> Tensor:
        """PacGAN: m consecutive samples as one, concatenated along dim 1 (channels / coordinates)."""
        m = int(self.mcfg.pack)
        return x if m == 1 else x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])

    def unpack(self, x: Tensor) -> Tensor:
        m = int(self.mcfg.pack)
        return x if m == 1 else x.reshape(x.shape[0] * m, x.shape[1] // m, *x.shape[2:])

    def d_terms(self, real: Judged, fake: Judged) -> Terms:
        return Terms()

    def g_terms(self, fake: Judged) -> Terms:
        return Terms()

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """D's adversarial output alone (what the penalties differentiate)."""
        return self.discriminate(x, y)[0]

    def judge(self, x: Tensor, y: Tensor | None = None, codes: Any = None) -> Judged:
        """D on a batch, real or fake, in either step: the one place where ``model.augment``
        applies (per sample, before ``discriminate`` packs; differentiable, so G's gradient
        flows through it)."""
        x = self.augment(x, self.noise)
        out, extra = self.discriminate(x, y)
        return Judged(x, y, out, extra, codes)

    # ------------------------------------------------------------------ the loop
    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """n_critic D steps, each on its own real batches (``pack`` of them), then one G step."""
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: Lightning returns a list
        d_step, g_step = self.fast_steps(opt_d, opt_g) if self.cfg.perf.fast else (None, None)
        n_d = int(self.mcfg.n_critic)
        xs, ys = batch.x.reshape(n_d, -1, *batch.x.shape[2:]), batch.y.reshape(n_d, -1, *batch.y.shape[2:])
        for real, y_real in zip(xs.unbind(0), ys.unbind(0)):
            d_stats = d_step(real, y_real) if d_step else self.critic_step(real, y_real, opt_d)
        g_stats = g_step(real) if g_step else self.generator_step(real, opt_g)
        self.update_ema(self.G_ema, self.G, self.mcfg.ema)
        stats = {**d_stats, **g_stats}
        self.finish_step(stats)
        return stats

    def critic_step(self, real: Tensor, y_real: Tensor, opt: Any) -> dict[str, Tensor]:
        """One D step: adversarial loss + the variant's terms + penalty, step, clipping."""
        m = self.mcfg
        with torch.no_grad():
            fake = self.make_critic_fake(real.shape[0], y_real)
            real = self.make_real(real)
        real_j, fake_j = self.judge(real, y_real), self.judge(fake.x, fake.y, fake.codes)
        adv = self.loss.d_loss(real_j.out, fake_j.out, real_label=1.0 - m.label_smoothing)
        extra = self.d_terms(real_j, fake_j)
        loss = adv + extra.loss
        stats = {"d/adv": adv.detach(), "d/real": real_j.out.detach().mean(), "d/fake": fake_j.out.detach().mean()}
        stats.update(self.augment.observe(real_j.out, real.shape[0]))  # ADA's p follows D's outputs on real data
        if self.penalty is not None and self.penalty_due():  # per pack: a pack is one sample of D
            # at the batches D saw (augmented, when model.augment is on): D's game is between the
            # augmented distributions, so its gradient is constrained between and at their samples
            critic = lambda packed: self.critic(self.unpack(packed), y_real)  # noqa: E731
            loss = self.add_penalty(loss, stats, critic, self.pack(real_j.x), self.pack(fake_j.x), m.penalty.every)
        self.backward_step(opt, loss)
        if m.clip > 0:
            clip_weights_(self.D, m.clip)
        return {"loss/d": loss.detach(), **stats, **extra.stats}

    def penalty_due(self) -> bool:
        """Lazy regularisation (Karras et al. 2020, sec. 4): with ``model.penalty.every`` = k > 1 the
        penalty applies on D steps 0, k, 2k... only, with its weight multiplied by k (critic_step)."""
        every = int(self.mcfg.penalty.every)
        if every == 1:
            return True
        due = int(self.d_steps) % every == 0
        self.d_steps += 1
        return due

    def generator_step(self, real: Tensor, opt: Any) -> dict[str, Tensor]:
        """One G step on as many samples as the last D step's ``real``: adversarial loss (or
        feature matching against ``real``) + the variant's terms, D frozen."""
        with self.frozen(self.D):
            fake = self.make_fake(real.shape[0])
            if self.mcfg.unroll > 0:  # G faces D after k more updates (plain critics only: validate)
                opt_d = self.optimizers()[1].optimizer  # type: ignore[index]
                judged = Judged(fake.x, fake.y, self.unrolled_critic(real, fake.x, opt_d)(fake.x), None, fake.codes)
            else:
                judged = self.judge(fake.x, fake.y, fake.codes)
            if self.mcfg.feature_matching:
                adv = self.feature_matching_loss(real, fake.x)
            else:
                adv = self.g_adversarial(judged, real)
            extra = self.g_terms(judged)
            loss = adv + extra.loss
            self.backward_step(opt, loss)
        return {"loss/g": loss.detach(), "g/adv": adv.detach(), **extra.stats}

    def feature_matching_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """||E f(x) - E f(G(z))||^2 with f D's features before its head (Salimans et al. 2016, 3.1)."""
        features = cast(Critic, self.D).features  # validate: feature matching needs a plain critic
        with torch.no_grad():
            f_real = features(self.pack(real)).mean(0)
        return (f_real - features(self.pack(fake)).mean(0)).pow(2).sum()

    def unrolled_critic(self, real: Tensor, fake: Tensor, opt_d: torch.optim.Optimizer) -> Callable[[Tensor], Tensor]:
        """D after ``model.unroll`` differentiable updates on the D loss of (real, fake), as a
        function (Metz et al. 2017, eq. 3-4). The updates follow D's optimizer (Adam from its
        current moments, or SGD) through ``torch.func.functional_call`` on copies of D's
        parameters, so G's gradient flows through every step and D itself is left unchanged."""
        m = self.mcfg
        names, originals = zip(*self.D.named_parameters())
        params = [p.detach().requires_grad_(True) for p in originals]

        def d_out(ps: list[Tensor], x: Tensor) -> Tensor:
            return functional_call(self.D, dict(zip(names, ps)), (self.pack(x),))

        state = unrolled_state(opt_d, list(originals))
        for _ in range(int(m.unroll)):
            loss = self.loss.d_loss(d_out(params, real), d_out(params, fake), real_label=1.0 - m.label_smoothing)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            params, state = unrolled_update(opt_d, params, grads, state)
        final = params
        return lambda x: d_out(final, x)

    def fast_steps(self, opt_d: Any, opt_g: Any) -> tuple[Any, Any]:
        """perf.fast: the same D and G steps as replayable units (see gan_lightning/fast.py)."""
        if self._fast is None:
            from gan_lightning.fast import ReplayableStep, autocast_for

            assert self.noise is not None
            if self.trainer.world_size > 1:
                raise ConfigError("perf.fast runs on one device; it does not support DDP")
            raw_d, raw_g = opt_d.optimizer, opt_g.optimizer
            autocast = autocast_for(self.trainer.precision, self.device)

            def d_fn(tape: Any, real: Tensor, y_real: Tensor) -> dict[str, Tensor]:
                with self.noise_from(tape):
                    return self.critic_step(real, y_real, raw_d)

            def g_fn(tape: Any, real: Tensor) -> dict[str, Tensor]:
                with self.noise_from(tape):
                    return self.generator_step(real, raw_g)

            self._fast = (
                ReplayableStep(d_fn, self.noise, self.device, autocast),
                ReplayableStep(g_fn, self.noise, self.device, autocast),
            )
        return self._fast


UnrolledState = list[tuple[Tensor, Tensor, float]]


def unrolled_state(opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> UnrolledState:
    """(first moment or momentum buffer, second moment, step) per parameter from D's optimizer
    (zeros and step 0 before its first step), detached: the unrolling starts from them as constants."""
    out = []
    for p in params:
        st = opt.state.get(p, {})
        first = st.get("exp_avg", st.get("momentum_buffer"))
        second = st.get("exp_avg_sq")
        out.append(
            (
                torch.zeros_like(p) if first is None else first.detach(),
                torch.zeros_like(p) if second is None else second.detach(),
                float(st.get("step", 1.0 if first is not None else 0.0)),
            )
        )
    return out


def unrolled_update(
    opt: torch.optim.Optimizer, params: list[Tensor], grads: tuple[Tensor, ...], state: UnrolledState
) -> tuple[list[Tensor], UnrolledState]:
    """One differentiable step of D's optimizer at its current hyperparameters, as out-of-place
    tensor maths: torch.optim.Adam's rule (bias-corrected, L2 weight decay) or SGD with momentum."""
    group = opt.param_groups[0]
    lr, wd = float(group["lr"]), float(group["weight_decay"])
    new_params, new_state = [], []
    for p, g, (m1, m2, t) in zip(params, grads, state):
        g = g + wd * p
        if isinstance(opt, torch.optim.SGD):
            mom = float(group["momentum"])
            m1 = g if t == 0 or mom == 0 else mom * m1 + g
            new_params.append(p - lr * m1)
            new_state.append((m1, m2, t + 1.0))
            continue
        b1, b2 = (float(b) for b in group["betas"])
        t += 1.0
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b2 * m2 + (1 - b2) * g * g
        # the clamp keeps sqrt's derivative finite where a gradient is exactly 0 (the clamped
        # entries get no gradient); Adam's value there is unchanged (m1 = 0: no update)
        denom = (m2 / (1 - b2**t)).clamp_min(1e-30).sqrt() + float(group["eps"])
        new_params.append(p - lr * (m1 / (1 - b1**t)) / denom)
        new_state.append((m1, m2, t))
    return new_params, new_state


# ---------------------------------------------------------------------- named variants
# Each sets its paper's defaults: a config layer above experiments/base.yaml and below the
# experiment file (gan_lightning/config.py).
DCGAN_NETS = {"g": "dcgan", "d": "dcgan"}
ADAM_DCGAN = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}


@MODELS.register("dcgan")
class DCGAN(GAN):
    """Radford et al. 2016: conv nets with BatchNorm, Adam lr 2e-4, beta1 0.5, non-saturating loss."""

    defaults = {"nets": DCGAN_NETS, "optim": ADAM_DCGAN}


@MODELS.register("wgan")
class WGAN(GAN):
    """Arjovsky et al. 2017 (Algorithm 1): clipping c = 0.01, RMSprop lr 5e-5, n_critic 5."""

    defaults = {
        "model": {"loss": "wasserstein", "n_critic": 5, "clip": 0.01},
        "nets": DCGAN_NETS,
        "optim": {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5},
    }


@MODELS.register("wgan_gp")
class WGANGP(GAN):
    """Gulrajani et al. 2017 (Algorithm 1): lambda 10, n_critic 5, Adam lr 1e-4, betas (0, 0.9),
    no BatchNorm in the critic."""

    defaults = {
        "model": {"loss": "wasserstein", "n_critic": 5, "penalty": {"name": "gp", "weight": 10.0}},
        "nets": DCGAN_NETS,
        "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
    }


@MODELS.register("lsgan")
class LSGAN(GAN):
    """Mao et al. 2017: least-squares loss with the 0-1 coding (a=0, b=1, c=1), Adam lr 2e-4, beta1 0.5."""

    defaults = {"model": {"loss": "least_squares"}, "nets": DCGAN_NETS, "optim": ADAM_DCGAN}


@MODELS.register("sngan")
class SNGAN(GAN):
    """Miyato et al. 2018: spectral norm on every D layer, hinge loss; Adam lr 2e-4, betas (0.5, 0.999),
    n_dis 1 (one of the settings of their Table 1 for the standard CNN)."""

    defaults = {"model": {"loss": "hinge", "sn_d": True}, "nets": DCGAN_NETS, "optim": ADAM_DCGAN}


@MODELS.register("dragan")
class DRAGAN(GAN):
    """Kodali et al. 2017: non-saturating loss + gradient penalty around perturbed data, lambda 10.
    The paper fixes no optimizer; Adam lr 1e-4, betas (0.5, 0.9) is our choice."""

    defaults = {
        "model": {"penalty": {"name": "dragan", "weight": 10.0}},
        "nets": DCGAN_NETS,
        "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.9]},
    }
