"""The manual-optimization base every GAN variant builds on.

It owns what all variants share: the generator-step counter (papers' "iterations", not
Lightning's ``global_step``, which counts every optimizer step), per-rank noise, a fixed z for
sample grids, the EMA of G, optimizer/scheduler set-up, the non-finite-loss watch, and the
checkpoint extras that make a resume exact. Subclasses write ``training_step``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple, cast

import lightning as L
import torch
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gan_lightning import __version__
from gan_lightning.data import DATAMODULES
from gan_lightning.data.base import DataInfo, seed_for
from gan_lightning.distributed import mean_over_ranks, several_devices
from gan_lightning.models.noise import NoiseSource
from gan_lightning.nets.minibatch import MINIBATCH_LAYERS
from gan_lightning.optim import build_optimizer, lazy_adjusted, lr_factor
from gan_lightning.penalties import penalty_from_config
from gan_lightning.precision import is_16bit_mixed, precision_of
from gan_lightning.registry import ConfigError
from gan_lightning.rng import capture_rng, restore_rng
from gan_lightning.schema import EMAConfig, ModelConfig, to_container, typed_schema

CHECKPOINT_FORMAT = 1
# "standing statistics" of the EMA generator's BatchNorm layers (Brock et al. 2019, sec. 4 / app. C):
# averages over this many batches of this many samples, drawn from a fixed seed
STANDING_BATCHES, STANDING_BATCH = 16, 256
STANDING_SEED = 0x57A7


def running_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """``net``'s BatchNorm layers that keep running statistics."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class OptimizerGroup(NamedTuple):
    """What one optimizer trains, at which base lr, and its lazy regularisation interval (1: none)."""

    params: Any  # an iterable of parameters
    lr: float
    every: int = 1


class GANModule(L.LightningModule):
    """Base LightningModule: ``automatic_optimization = False``; one ``training_step`` is one
    generator iteration and consumes ``real_batches_per_step`` real batches."""

    Config: ClassVar[type] = ModelConfig
    # the paper's defaults (model keys, optimizer, nets...): a config layer above base.yaml and
    # below the experiment file
    defaults: ClassVar[dict[str, Any]] = {}
    # whether perf.fast (gan_lightning/fast.py) can replay this model's D and G steps
    fast_path: ClassVar[bool] = False
    lazy_penalty: ClassVar[bool] = False  # its D step applies model.penalty every k-th step (penalty.every)
    # whether ``encode`` maps images to z (BiGAN, ALI, AAE): latent inversion starts from its output
    has_encoder: ClassVar[bool] = False
    # whether it passes G its per-rank noise as ``draw`` (nets with ``noise_inputs``: nets.g=style)
    feeds_noise_inputs: ClassVar[bool] = False
    # whether ``truncated`` implements a truncation trick (``sample --truncation``, ``truncation`` sweeps)
    truncation_trick: ClassVar[bool] = False
    fixed_z: Tensor  # a buffer (registered in ``__init__``)

    def __init__(self, cfg: DictConfig | dict, info: DataInfo | dict):
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg if isinstance(cfg, DictConfig) else self.typed_config(cfg)
        self.info = info if isinstance(info, DataInfo) else DataInfo.from_dict(info)
        self.mcfg = self.cfg.model
        # stored in checkpoints as plain data, so ``Model.load_from_checkpoint(path)`` rebuilds it
        self.save_hyperparameters({"cfg": to_container(self.cfg), "info": self.info.to_dict()})
        self.g_step = 0
        self.noise: NoiseSource | None = None
        self._pending: dict[str, Any] = {}
        self._finite = True
        self._nonfinite_at: int | None = None
        # the EMA generator's sampling copy with its own BatchNorm statistics, and the g_step it is for
        # (in a dict, so it is no submodule: never in checkpoints, never moved or synced)
        self._sampling: dict[str, Any] = {}
        g = torch.Generator().manual_seed(seed_for(int(self.cfg.seed), 0xF1CED))
        n_grid = max(1, int(self.cfg.log.grid))
        self.register_buffer("fixed_z", torch.randn(n_grid, self.z_dim, generator=g), persistent=False)

    # ------------------------------------------------------------------ config hooks
    @classmethod
    def typed_config(cls, data: dict[str, Any]) -> DictConfig:
        """A stored config (checkpoint, hyperparameters) as this model's typed config."""
        data_config = DATAMODULES.get(data["data"]["name"], "data.name").Config
        return OmegaConf.merge(typed_schema(cls.Config, data_config), data)  # type: ignore[return-value]

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        """Checks of the model section beyond its types (subclasses extend)."""
        if cfg.model.z_dim < 1:
            raise ConfigError(f"bad value for 'model.z_dim': must be >= 1, got {cfg.model.z_dim}")
        ema = cfg.model.get("ema")
        if ema is not None and not 0 <= ema.decay < 1:
            raise ConfigError(f"bad value for 'model.ema.decay': in [0, 1) (0: no EMA), got {ema.decay}")
        if ema is not None and ema.start < 0:
            raise ConfigError(f"bad value for 'model.ema.start': G steps, must be >= 0, got {ema.start}")
        precision = precision_of(cfg)
        if ema is not None and ema.decay > 0 and precision in ("16-true", "bf16-true"):
            raise ConfigError(
                f"bad value for 'trainer.precision': {precision} casts the EMA generator to 16 bits, where an "
                f"update by 1 - {ema.decay} of the gap rounds to no change; use trainer.precision=bf16-mixed "
                "(or 32-true), or drop the EMA with model.ema.decay=0"
            )
        cls.validate_penalty(cfg)
        if cfg.perf.fast:
            cls.validate_fast_path(cfg)

    @classmethod
    def validate_penalty(cls, cfg: DictConfig) -> None:
        """``model.penalty`` of the models that have one: a known name, a weight >= 0, and an interval
        above 1 only where the D step is lazy (``lazy_penalty``)."""
        p = cfg.model.get("penalty")
        if p is None:
            return
        penalty = penalty_from_config(cfg)
        minibatch = str(cfg.nets.get("d_minibatch", "none"))
        if penalty is not None and penalty.per_sample and MINIBATCH_LAYERS.get(minibatch, False):
            raise ConfigError(
                f"bad value for 'nets.d_minibatch': {minibatch} couples the samples of the per-sample "
                f"'{p.name}' penalty (each D output reads every other sample); use nets.d_minibatch=stddev "
                "or none, or model.penalty.name=none"
            )
        if p.weight < 0:
            raise ConfigError(f"bad value for 'model.penalty.weight': must be >= 0, got {p.weight}")
        if p.every < 1:
            raise ConfigError(f"bad value for 'model.penalty.every': must be >= 1 D steps (1: each), got {p.every}")
        if p.every != 1 and not cls.lazy_penalty:
            raise ConfigError(
                f"bad value for 'model.penalty.every': {cfg.model.name} applies its penalty on every D step (lazy "
                f"regularisation is the GAN loop's), got {p.every}; set model.penalty.every=1"
            )

    @classmethod
    def validate_fast_path(cls, cfg: DictConfig) -> None:
        """perf.fast steps the raw optimizers of one device inside replayed units."""
        if not cls.fast_path:
            raise ConfigError(
                f"bad value for 'perf.fast': the fast path does not cover model '{cfg.model.name}' "
                "(it replays the shared D and G steps of the GAN family); drop perf.fast"
            )
        if cfg.optim.name not in ("adam", "rmsprop"):
            raise ConfigError(f"bad value for 'perf.fast': it needs optim.name adam or rmsprop, not '{cfg.optim.name}'")
        if several_devices(cfg.trainer):
            raise ConfigError("bad value for 'perf.fast': it runs on one device (no DDP); drop trainer.devices")
        if is_16bit_mixed(cfg):
            raise ConfigError(
                "bad value for 'perf.fast': it steps the optimizers itself, so 16-bit mixed precision's loss "
                "scaler would never unscale nor skip inf steps; use trainer.precision=32-true or bf16-mixed"
            )

    @property
    def z_dim(self) -> int:
        return int(self.cfg.model.z_dim)

    @property
    def real_batches_per_step(self) -> int:
        return 1

    # ------------------------------------------------------------------ EMA of G
    def make_ema(self, net: nn.Module, ema: EMAConfig) -> nn.Module | None:
        if ema.decay <= 0:
            return None
        return copy.deepcopy(net).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, ema_net: nn.Module | None, net: nn.Module, ema: EMAConfig) -> None:
        """ema <- decay * ema + (1 - decay) * net after ``ema.start`` G steps, a copy before."""
        if ema_net is None:
            return
        decay = float(ema.decay) if self.g_step >= ema.start else 0.0
        ema_params: list[Tensor] = [p for p in ema_net.parameters()]
        params = [p.detach() for p in net.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(ema_params, params)
        else:
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(ema_net.buffers(), net.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ optimizers
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """The parameters each optimizer trains, in the order ``training_step`` unpacks them."""
        raise NotImplementedError

    def configure_optimizers(self) -> Any:
        """One optimizer per group of ``optimizer_groups``, each with the lr schedule of ``optim``."""
        opts = [self.make_optimizer(list(g.params), g.lr, g.every) for g in self.optimizer_groups()]
        return opts, [self.make_scheduler(opt) for opt in opts]

    def make_optimizer(self, params: Any, lr: float, every: int = 1) -> torch.optim.Optimizer:
        """The optimizer of ``params`` at base ``lr``; ``every``: the interval k of their lazy
        regulariser, which with ``optim.lazy_adjust`` scales lr and betas (``lazy_adjusted``)."""
        o = self.cfg.optim
        if o.lazy_adjust:
            lr, o = lazy_adjusted(lr, o, every)
        if self.cfg.perf.fast:
            from gan_lightning.fast import capturable_optimizer_kwargs

            return build_optimizer(params, lr, o, **capturable_optimizer_kwargs(o.name, lr, self.device))
        return build_optimizer(params, lr, o)

    def make_scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Stepped once per generator step (see ``step_schedulers``)."""
        o, steps = self.cfg.optim, int(self.cfg.steps)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, o.schedule, o.decay_start))

    def step_schedulers(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for sch in schedulers if isinstance(schedulers, list) else [schedulers]:
            assert not isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau)  # make_scheduler: LambdaLR
            sch.step()

    def backward_step(self, opt: Any, loss: Tensor) -> None:
        """zero_grad, manual_backward (all-reduced under DDP), step."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()

    def add_penalty(
        self, loss: Tensor, stats: dict[str, Tensor], critic: Any, real: Tensor, fake: Tensor, scale: float = 1.0
    ) -> Tensor:
        """``loss`` + model.penalty.weight x ``scale`` x the penalty (``self.penalty``) of ``critic``
        between ``real`` and ``fake``, its draws from the per-rank noise; logged as ``d/penalty``.
        The one place every D step applies its gradient penalty."""
        assert self.noise is not None  # set up in on_fit_start
        penalty = self.penalty(critic, real, fake, self.noise.uniform)  # type: ignore[operator]  # set by each model
        stats["d/penalty"] = penalty.detach()
        return loss + float(self.mcfg.penalty.weight) * scale * penalty

    @contextmanager
    def frozen(self, *nets: nn.Module):
        """Parameters of ``nets`` stop requiring grad (no wasted D gradients in a G step)."""
        flags = [[p.requires_grad for p in n.parameters()] for n in nets]
        for n in nets:
            n.requires_grad_(False)
        try:
            yield
        finally:
            for n, fl in zip(nets, flags):
                for p, f in zip(n.parameters(), fl):
                    p.requires_grad_(f)

    @contextmanager
    def noise_from(self, source: Any):
        """Draw the training noise from ``source`` (the fast path's tape) inside the block."""
        saved, self.noise = self.noise, source
        try:
            yield
        finally:
            self.noise = saved

    # ------------------------------------------------------------------ noise and sampling
    def on_fit_start(self) -> None:
        class_frequencies = getattr(getattr(self.trainer, "datamodule", None), "class_frequencies", None)
        if not self.info.class_frequencies and callable(class_frequencies):
            self.info.class_frequencies = class_frequencies()  # checkpoints keep it with `info`
        world, rank = self.trainer.world_size, self.trainer.global_rank
        self.noise = NoiseSource(seed_for(int(self.cfg.seed), 0x0015E), rank, world, self.device)
        if "noise" in self._pending:
            self.noise.load_state_dict(self._pending.pop("noise"))
        if "rank_states" in self._pending:
            states = self._pending.pop("rank_states")
            self.load_rank_state(states[rank % len(states)])

    def on_train_start(self) -> None:
        if "rng" in self._pending:
            restore_rng(self._pending.pop("rng"))
        if self.cfg.perf.fast:  # after Lightning restored the optimizers' state (with CPU storages)
            from gan_lightning.fast import optimizer_tensors_to_

            optimizers = self.optimizers()
            for opt in optimizers if isinstance(optimizers, list) else [optimizers]:
                optimizer_tensors_to_(opt.optimizer, self.device, capturable=self.device.type == "cuda")

    def use_raw_generators(self) -> None:
        """From now on sample and translate with the trained generator(s), not their EMA (``sample --raw``)."""
        if getattr(self, "G_ema", None) is not None:
            setattr(self, "G_ema", None)  # noqa: B010  (a plain assignment would fix its type to None for mypy)

    def generator_for_sampling(self) -> nn.Module:
        """The net ``sample`` uses: G, or with an EMA of G a copy of the EMA generator whose
        BatchNorm statistics are its own (``standing_statistics``), made once per G step. Sampling
        leaves the model's state alone, so checkpoints and DDP ranks do not depend on it."""
        ema = getattr(self, "G_ema", None)
        if ema is None:
            return cast(nn.Module, self.G)
        if not running_norms(ema):
            return cast(nn.Module, ema)
        # in-place writes (EMA updates, load_state_dict) bump the version counters; CUDA-graph
        # replays do not, but they come with a new g_step
        key = (self.g_step, next(ema.parameters()).device, sum(p._version for p in ema.parameters()))
        if self._sampling.get("key") != key:
            self._sampling.clear()  # the old copy goes before the new one is made
            # plain BatchNorm (trainer.sync_batchnorm made them SyncBatchNorm): rank 0 alone samples for grids
            # and neighbours, and a synced train-mode pass would wait for the other ranks forever
            net = TorchSyncBatchNorm().revert(copy.deepcopy(ema))
            self.standing_statistics(net)
            self._sampling.update(key=key, net=net)
        return cast(nn.Module, self._sampling["net"])

    @torch.no_grad()
    def standing_statistics(self, net: nn.Module) -> None:
        """Recompute ``net``'s BatchNorm running statistics from its own activations.

        ``update_ema`` averages weights but copies the live G's buffers, statistics of other
        weights: the eval-mode EMA generator would normalise with the wrong means and variances.
        A cumulative average over fixed-seed batches in train mode replaces them; the global RNG
        is untouched, so sampling stays a function of the checkpoint.
        """
        norms = running_norms(net)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        was_training = net.training
        net.train()
        g = torch.Generator().manual_seed(STANDING_SEED)
        for _ in range(STANDING_BATCHES):
            y = self.labels_for(STANDING_BATCH)
            self.generate(self.draw_z(STANDING_BATCH, g).to(self.device), net, None if y is None else y.to(self.device))
        net.train(was_training)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def generate(self, z: Tensor, net: nn.Module | None = None, y: Tensor | None = None) -> Tensor:
        net = net or self.generator_for_sampling()
        return net(z) if y is None else net(z, y)

    def labels_for(self, n: int) -> Tensor | None:
        """Labels to sample ``n`` images with: None for unconditional models."""
        return None

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """z for model-space images ``x`` (B, C, H, W) (and labels ``y``): models with ``has_encoder``."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder (has_encoder is False)")

    @torch.no_grad()
    def generate_from(
        self, z: Tensor, net: nn.Module | None = None, y: Tensor | None = None, batch_size: int = 500
    ) -> Tensor:
        """G(z[, y]) in model space, in eval mode and in batches, on this module's device."""
        net = net or self.generator_for_sampling()
        was_training = net.training
        net.eval()
        out = []
        for i in range(0, len(z), batch_size):
            yb = None if y is None else y[i : i + batch_size].to(self.device)
            out.append(self.generate(z[i : i + batch_size].to(self.device), net, yb))
        net.train(was_training)
        return torch.cat(out) if out else torch.empty(0)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        net: nn.Module | None = None,
        y: Tensor | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """``n`` samples in model space from the sampling generator (eval mode); conditional models
        cycle through the classes unless ``y`` is given; ``truncation``: the model's truncation
        trick at that strength (``truncated``)."""
        z = self.draw_z(n, generator)
        if truncation is not None:
            z, net = self.truncated(z, net or self.generator_for_sampling(), float(truncation), generator)
        return self.generate_from(z, net, y if y is not None else self.labels_for(n))

    def truncated(
        self, z: Tensor, net: nn.Module, psi: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, nn.Module]:
        """(codes, net) that sample with the truncation trick at strength ``psi`` (``sample
        --truncation``), from codes ``z`` of ``draw_z``: a model with a truncation trick overrides
        it (StyleGAN: w' = w_avg + psi (w - w_avg) in the net; a truncated normal redraws z)."""
        raise ConfigError(
            f"bad value for '--truncation': model '{self.cfg.model.name}' has no truncation trick; drop --truncation"
        )

    def draw_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes from the prior G was trained on, on the CPU: N(0, I) (the AAE's mixture prior overrides)."""
        return torch.randn(n, self.z_dim, generator=generator)

    def generators_to_evaluate(self, raw_too: bool = True) -> dict[str, nn.Module]:
        """{key prefix: net}: the sampling generator, and the raw one under 'raw/' when it differs."""
        nets = {"": self.generator_for_sampling()}
        raw = getattr(self, "G", None)
        if raw_too and raw is not None and raw is not nets[""]:
            nets["raw/"] = raw
        return nets

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """Samples of the fixed z (the same every call and across resumes), eval mode."""
        return self.generate_from(self.fixed_z)

    @property
    def grid_nrow(self) -> int | None:
        """Images per row of sample grids (None: a square grid)."""
        return None

    # ------------------------------------------------------------------ end of a G iteration
    def finish_step(self, stats: dict[str, Tensor]) -> None:
        """Count the step, watch for non-finite losses, log every ``log.every`` steps."""
        self.g_step += 1
        self.step_schedulers()
        self.sync_buffers()
        every = int(self.cfg.log.every)
        losses = {k: v for k, v in stats.items() if k.startswith("loss/")}
        log_step = bool(every) and (self.g_step % every == 0 or self.g_step == 1)
        if log_step:  # the whole batch's figures: under DDP each rank's stats are of its share
            values = mean_over_ranks(stats)
            self.log_scalars(values)
            self.log_dict({k.split("/")[1]: values[k] for k in losses}, prog_bar=True, logger=False)
        # free on a CPU: every step; on an accelerator (a device sync): at log steps and the last
        if log_step or self.device.type == "cpu" or self.g_step >= int(self.cfg.steps):
            self.check_finite(losses)
        self.agree_on_divergence()

    def agree_on_divergence(self) -> None:
        """Under DDP a non-finite loss seen by one rank stops every rank at the same step (else the
        others would wait forever in their next all-reduce): the decision is reduced each step."""
        if self._trainer is None or self.trainer.world_size < 2:
            return
        if self.trainer.strategy.reduce_boolean_decision(not self._finite, all=False) and self._finite:
            self._finite, self._nonfinite_at = False, self.g_step

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Under DDP, every rank takes rank 0's buffers (BatchNorm running statistics, the EMA
        copies of them) at the end of each G step, so ranks evaluate, sample and hash one G.
        This replaces DDP's own broadcast at the start of each forward (off in ``trainer_kwargs``)."""
        if self._trainer is None or self.trainer.world_size < 2 or not torch.distributed.is_initialized():
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for b in self.buffers():
            by_dtype.setdefault(b.dtype, []).append(b)
        for tensors in by_dtype.values():
            flat = torch._utils._flatten_dense_tensors(tensors)
            torch.distributed.broadcast(flat, src=0)
            for b, synced in zip(tensors, torch._utils._unflatten_dense_tensors(flat, tensors)):
                b.copy_(synced)

    def log_scalars(self, values: dict[str, float]) -> None:
        """Send scalars to every logger at x = generator steps done (Lightning's own step counts
        batches from 0, one behind)."""
        if self._trainer is None:
            return
        for logger in self.trainer.loggers:
            logger.log_metrics(values, step=self.g_step)

    def publish_metrics(self, values: dict[str, float]) -> None:
        """Evaluation results: to the loggers (x = G steps) and into ``trainer.callback_metrics``
        under the same keys, so ``ModelCheckpoint(monitor="fid")`` and ``EarlyStopping`` see them."""
        self.log_scalars(values)
        if self._trainer is None or self._current_fx_name is None:  # not inside a Trainer hook
            return
        for key, value in values.items():
            self.log(key, float(value), on_step=True, on_epoch=False, logger=False, batch_size=1)

    def check_finite(self, losses: dict[str, Tensor]) -> None:
        if (
            self._finite
            and losses
            and not bool(torch.stack([v.detach().float() for v in losses.values()]).isfinite().all())
        ):
            self._finite, self._nonfinite_at = False, self.g_step

    @property
    def diverged_at(self) -> int | None:
        """The G step at which a loss was first seen non-finite, or None."""
        return None if self._finite else self._nonfinite_at

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.g_step >= int(self.cfg.steps) or not self._finite:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lightning"] = {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "model_class": type(self).__name__,
            "config": to_container(self.cfg),
            "info": self.info.to_dict(),
            "g_step": self.g_step,
            "noise": self.noise.state_dict() if self.noise is not None else None,
            "rng": capture_rng(),
            "rank_states": self.gathered_rank_states(),
        }

    def rank_state(self) -> dict[str, Any]:
        """State of this rank that no weight holds and the ranks do not share (a history buffer that
        each rank fills with its own images), as CPU tensors: checkpoints keep every rank's."""
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Takes back what ``rank_state`` gave, at the start of a resumed fit (rank r gets saved rank
        r's, or rank r mod N's when the run was saved by N processes)."""

    def gathered_rank_states(self) -> list[dict[str, Any]]:
        """Every rank's ``rank_state``, in rank order (a collective: every rank saves checkpoints)."""
        own = self.rank_state()
        trainer = self._trainer
        if not own or trainer is None or trainer.world_size == 1:
            return [own] if own else []
        states: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(states, own)
        return states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint["gan_lightning"]
        self.g_step = int(meta["g_step"])
        self._sampling.clear()
        if meta.get("noise") is not None:
            self._pending["noise"] = meta["noise"]
        self._pending["rng"] = meta["rng"]
        if meta.get("rank_states"):
            self._pending["rank_states"] = meta["rank_states"]
        elif legacy := {k: meta[k] for k in self.rank_state() if k in meta}:
            # written before per-rank states (one process's state under the metadata's own keys)
            self._pending["rank_states"] = [legacy]
