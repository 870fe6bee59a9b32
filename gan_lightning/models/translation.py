"""Image-to-image translation: pix2pix (paired) and CycleGAN (unpaired).

Both are new step structures on the same manual-optimization base: pix2pix conditions one
PatchGAN on (input, output) pairs and adds an L1 term; CycleGAN trains two generators and two
PatchGANs with cycle-consistency and identity terms and a history of generated images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, cast

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data import DATAMODULES
from gan_lightning.data.base import PairBatch
from gan_lightning.data.translation import PairedDataModule
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import GANModule, OptimizerGroup
from gan_lightning.nets import INITS, with_capabilities
from gan_lightning.nets.translation import PatchDiscriminator, ResnetGenerator, UNetGenerator, size_problem
from gan_lightning.registry import MODELS, ConfigError, Registry
from gan_lightning.schema import EMAConfig, ModelConfig, NetsConfig

TRANSLATORS: Registry[Callable[..., nn.Module]] = Registry("image-to-image generator")


def register_translator(
    name: str, net_class: type[nn.Module], build: Callable[..., nn.Module], reads: tuple[str, ...]
) -> None:
    """``nets.g=name`` builds ``build(nets, c_in, c_out, size)``, which reads the ``nets.*`` keys
    ``reads``; the config checks read the capabilities (``size_multiple``) of ``net_class``."""
    TRANSLATORS.register(name)(with_capabilities(net_class=net_class, reads=reads)(build))


def nets_keys_read(factory: Any) -> tuple[str, ...]:
    """The ``nets.*`` keys a registered translator or image discriminator reads (its ``reads``)."""
    return tuple(getattr(factory, "reads", ()))


def translator_capability(g: str, name: str, default: Any = None) -> Any:
    """Class attribute ``name`` of the net class of translator ``nets.g=g`` (``default`` where it has none)."""
    return getattr(getattr(TRANSLATORS.get(g, "nets.g"), "net_class", None), name, default)


def size_multiple(g: str) -> int:
    """What the image size of translator ``nets.g=g`` must be a multiple of (1: anything)."""
    return int(translator_capability(g, "size_multiple", 1))


def min_size(g: str) -> int:
    """The smallest image size translator ``nets.g=g`` takes (1: anything)."""
    return int(translator_capability(g, "min_size", 1))


register_translator(
    "unet",
    UNetGenerator,
    lambda nets, c_in, c_out, size: UNetGenerator(c_in, c_out, size, nets.g_width, nets.g_norm),
    reads=("g_width", "g_norm"),
)
register_translator(
    "resnet",
    ResnetGenerator,
    lambda nets, c_in, c_out, size: ResnetGenerator(c_in, c_out, nets.resnet_blocks, nets.g_width, nets.g_norm),
    reads=("resnet_blocks", "g_width", "g_norm"),
)


@with_capabilities(reads=("d_width", "d_norm", "patch_layers"))
def patch_discriminator(nets: Any, channels: int, size: int = 0) -> nn.Module:
    norm = "instance" if nets.d_norm == "auto" else nets.d_norm
    return PatchDiscriminator(channels, nets.d_width, nets.patch_layers, norm)


# discriminators of one image domain by ``nets.d``: (nets, channels, image size) -> net
IMAGE_DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("image-to-image discriminator")
IMAGE_DISCRIMINATORS.register("patchgan")(patch_discriminator)


class ImagePool:
    """The history of generated images each discriminator also sees (Shrivastava et al. 2017, as
    in CycleGAN): up to ``size`` images; once full, each new image is returned as is with
    probability 1/2, else swapped for a random stored one (which it replaces)."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor, rand: Callable[..., Tensor]) -> Tensor:
        if self.size == 0:
            return batch
        coins, picks = rand(len(batch)), rand(len(batch))  # drawn for every image: a fixed RNG budget
        out = []
        for image, coin, pick in zip(batch.detach(), coins.tolist(), picks.tolist()):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif coin < 0.5:
                i = min(int(pick * self.size), self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.stack(self.images).cpu() if self.images else None}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [] if state["images"] is None else [t.to(device) for t in state["images"]]


@dataclass
class TranslationConfig(ModelConfig):
    """Keys every image-to-image model has."""

    ema: EMAConfig = field(default_factory=EMAConfig)  # of each generator; translations, grids and metrics use it


@dataclass
class CycleConfig(TranslationConfig):
    """Keys of the models with a round trip (a cycle or reconstruction term through a translation)."""

    # std of N(0, 1) noise added (in [-1, 1] model space) to the translation before it is mapped back, in the
    # cycle term only; 0: the papers. Breaks low-amplitude codes hidden in the translation that meet the cycle
    # term without translating (Chu et al. 2017); the defence of Bashkirova et al. 2019
    cycle_noise: float = 0.0


class TranslationModule(GANModule):
    """Shared by the image-to-image models: one real batch per step, translation grids and sampling, and
    an EMA of each generator the model names in ``average`` (when ``model.ema.decay`` > 0)."""

    averaged: tuple[str, ...] = ()  # the generators with an EMA copy '<name>_ema'

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        if issubclass(cls.Config, CycleConfig) and cfg.model.cycle_noise < 0:
            raise ConfigError(
                f"bad value for 'model.cycle_noise': a noise std, must be >= 0, got {cfg.model.cycle_noise}"
            )
        TRANSLATORS.get(cfg.nets.g, "nets.g")
        cls.validate_loss(cfg)
        IMAGE_DISCRIMINATORS.get(cfg.nets.d, "nets.d")
        if cfg.nets.g_norm == "virtual_batch" or cfg.nets.d_minibatch != "none":
            raise ConfigError(
                "bad value in 'nets': virtual batch norm and minibatch layers belong to the z -> image nets of "
                "the GAN family; image-to-image nets take nets.g_norm=batch|instance|none, nets.d_minibatch=none"
            )
        if cfg.nets.patch_layers < 1 or cfg.nets.resnet_blocks < 1:
            raise ConfigError("bad value in 'nets': patch_layers and resnet_blocks must be >= 1")
        cls.validate_data(cfg)
        cls.validate_nets_read(cfg)  # after the data: a model-data mismatch is the first thing to fix

    # ------------------------------------------------------------------ EMA of the generators
    def average(self, *names: str) -> None:
        """Keep an EMA copy ``<name>_ema`` of each generator ``names`` when ``model.ema.decay`` > 0 (each model
        calls this once its generators exist); ``generator`` then hands out the copy for translating."""
        emas = {name: self.make_ema(getattr(self, name), self.mcfg.ema) for name in names}
        self.averaged = tuple(name for name, ema in emas.items() if ema is not None)
        for name in self.averaged:
            setattr(self, f"{name}_ema", emas[name])

    def generator(self, name: str) -> nn.Module:
        """The net that translates for generator ``name``: its EMA copy when there is one, else itself."""
        net = getattr(self, f"{name}_ema") if name in self.averaged else getattr(self, name)
        return cast(nn.Module, net)

    def use_raw_generators(self) -> None:
        self.averaged = ()  # ``generator`` hands out the trained nets; the averages stay in the state dict

    @contextmanager
    def raw_generators(self) -> Iterator[None]:
        """Within: the trained nets translate (``use_raw_generators``); after: the averages again."""
        averaged = self.averaged
        self.use_raw_generators()
        try:
            yield
        finally:
            self.averaged = averaged

    def update_averages(self) -> None:
        for name in self.averaged:
            self.update_ema(getattr(self, f"{name}_ema"), getattr(self, name), self.mcfg.ema)

    def reset_averages(self) -> None:
        """Each EMA copy <- its generator (after a generator's weights were loaded from elsewhere)."""
        with torch.no_grad():
            for name in self.averaged:
                getattr(self, f"{name}_ema").load_state_dict(getattr(self, name).state_dict())

    def finish_step(self, stats: dict[str, Tensor]) -> None:
        self.update_averages()  # after the step's G update, at the G step count the GAN family's EMA uses
        super().finish_step(stats)

    def perturbed(self, translation: Tensor) -> Tensor:
        """A translation on its way back in a cycle term: with ``model.cycle_noise`` Gaussian noise when set."""
        std = float(self.mcfg.cycle_noise)  # only the models with a CycleConfig call this
        if std == 0:
            return translation
        assert self.noise is not None  # set up in on_fit_start
        return translation + std * self.noise.normal(len(translation), *translation.shape[1:]).to(translation)

    @classmethod
    def validate_nets_read(cls, cfg: DictConfig) -> None:
        """A ``nets.*`` key that neither chosen net reads (``reads`` of the translator and of the image
        discriminator; ``init`` applies to both) and that differs from the model's default (else the
        schema's) would be accepted and ignored: refused, naming the key."""
        n, read = cfg.nets, cls.nets_read(cfg)
        schema, defaults = NetsConfig(), cls.defaults.get("nets", {})
        for f in fields(NetsConfig):
            default = defaults.get(f.name, getattr(schema, f.name))
            if f.name not in read and n[f.name] != default:
                raise ConfigError(
                    f"bad value for 'nets.{f.name}': model '{cfg.model.name}' with nets.g={n.g} and nets.d={n.d} "
                    f"does not use it, so it would be ignored; leave nets.{f.name}={default}"
                )

    @classmethod
    def validate_loss(cls, cfg: DictConfig) -> None:
        """A loss of the GAN family: the energy loss's D term would never see the generated images."""
        if LOSSES.get(cfg.model.loss, "model.loss").energy:
            raise ConfigError(
                f"bad value for 'model.loss': '{cfg.model.loss}' is the autoencoder critics' loss (EBGAN, BEGAN), "
                "whose D term here would never see the generated images; use nonsaturating, least_squares, "
                "hinge or wasserstein"
            )

    @classmethod
    def nets_read(cls, cfg: DictConfig) -> set[str]:
        """The ``nets.*`` keys this model's nets read: nets.g's and nets.d's ``reads``, and ``init``."""
        g, d = TRANSLATORS.get(cfg.nets.g, "nets.g"), IMAGE_DISCRIMINATORS.get(cfg.nets.d, "nets.d")
        return {"g", "d", "init", *nets_keys_read(g), *nets_keys_read(d)}

    @classmethod
    def validate_data(cls, cfg: DictConfig) -> None:
        """The data it translates (domains A and B) and the image size its nets fit (StarGAN replaces it)."""
        data_cls = DATAMODULES.get(cfg.data.name, "data.name")
        if not issubclass(data_cls, PairedDataModule):
            raise ConfigError(
                f"model '{cfg.model.name}' translates images: use data=fashion_edges, paired_folder or unpaired_folder"
            )
        if data_cls.resizes:
            raise ConfigError(
                f"bad value for 'data.name': model '{cfg.model.name}' keeps the image size and '{cfg.data.name}' "
                "upsamples: use model=srgan"
            )
        patch_layers = int(cfg.nets.patch_layers) if cfg.nets.d == "patchgan" else 0  # 0: no PatchGAN bound
        g, size = str(cfg.nets.g), int(cfg.data.image_size)
        problem = size_problem(g, patch_layers, size, size_multiple(g), min_size(g))
        if problem:
            raise ConfigError(f"bad value for 'data.image_size': {problem}")

    def translator(self, c_in: int, c_out: int) -> nn.Module:
        net = TRANSLATORS.get(self.cfg.nets.g, "nets.g")(self.cfg.nets, c_in, c_out, self.info.shape[-1])
        return self.initialised(net)

    def discriminator(self, channels: int) -> nn.Module:
        """A discriminator of ``channels``-channel images (``nets.d``)."""
        net = IMAGE_DISCRIMINATORS.get(self.cfg.nets.d, "nets.d")(self.cfg.nets, channels, self.info.shape[-1])
        return self.initialised(net)

    def initialised(self, net: nn.Module) -> nn.Module:
        """``net`` with ``nets.init`` applied ('default': PyTorch's, what these models' defaults keep)."""
        if self.cfg.nets.init in INITS:
            INITS[self.cfg.nets.init](net)
        return net

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "ab", batch_size: int = 250) -> Tensor:
        """Model-space images of one domain -> the other (eval mode, batched, on this device)."""
        net = self.nets_for(direction)
        was = net.training
        net.eval()
        out = [net(images[i : i + batch_size].to(self.device)) for i in range(0, len(images), batch_size)]
        net.train(was)
        return torch.cat(out)

    def nets_for(self, direction: str) -> nn.Module:
        raise NotImplementedError

    def generator_for_sampling(self) -> nn.Module:
        return self.nets_for("ab")

    @property
    def directions(self) -> tuple[str, ...]:
        return ("ab",)

    def translation_grid(self, a: Tensor, b: Tensor) -> tuple[Tensor, int]:
        """Rows of (input, output, target), in model space."""
        fake = self.translate(a).cpu()
        return torch.stack([a.cpu(), fake, b.cpu()], 1).flatten(0, 1), 3


@dataclass
class Pix2PixConfig(TranslationConfig):
    name: str = "pix2pix"
    loss: str = "nonsaturating"  # the conditional GAN loss (Isola et al. use the original GAN objective)
    l1_weight: float = 100.0  # lambda of the L1 term
    adversarial: bool = True  # false: the same U-Net trained with L1 alone (the baseline of the paper)
    d_weight: float = 0.5  # D's loss is halved, slowing D relative to G (Isola et al. 2017)


@MODELS.register("pix2pix")
class Pix2Pix(TranslationModule):
    """pix2pix (Isola et al. 2017): U-Net G, PatchGAN D on (input, output) pairs, adversarial
    loss + lambda * L1 with lambda = 100; Adam 2e-4, beta1 0.5."""

    Config = Pix2PixConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {"g": "unet", "d": "patchgan", "g_norm": "batch", "d_norm": "batch", "init": "default"},
        "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]},
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        c_a, c_b = self.info.shape[0], self.info.shape_b[0]
        self.loss = LOSSES.get(self.mcfg.loss, "model.loss")
        self.G = self.translator(c_a, c_b)
        self.D = self.discriminator(c_a + c_b)
        self.average("G")

    def nets_for(self, direction: str) -> nn.Module:
        return self.generator("G")

    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim
        return [OptimizerGroup(self.G.parameters(), o.lr_g), OptimizerGroup(self.D.parameters(), o.lr_d)]

    def training_step(self, batch: PairBatch, batch_idx: int) -> dict[str, Tensor]:
        m = self.mcfg
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: Lightning returns a list
        a, b = batch.a[0], batch.b[0]
        stats: dict[str, Tensor] = {}
        fake = self.G(a)  # one forward: D judges the output (one dropout mask) G is trained on
        if m.adversarial:  # D step: real pairs (a, b) against generated pairs (a, G(a))
            real_out, fake_out = self.D(torch.cat([a, b], 1)), self.D(torch.cat([a, fake.detach()], 1))
            d_loss = m.d_weight * self.loss.d_loss(real_out, fake_out)
            self.backward_step(opt_d, d_loss)
            stats["loss/d"] = d_loss.detach()
        with self.frozen(self.D):  # G step: fool the updated D and stay near the target in L1
            l1 = (fake - b).abs().mean()
            g_loss = m.l1_weight * l1
            if m.adversarial:
                adv = self.loss.g_loss(self.D(torch.cat([a, fake], 1)))
                g_loss = g_loss + adv
                stats["g/adv"] = adv.detach()
            self.backward_step(opt_g, g_loss)
        stats.update({"loss/g": g_loss.detach(), "g/l1": l1.detach()})
        self.finish_step(stats)
        return stats


@dataclass
class CycleGANConfig(CycleConfig):
    name: str = "cyclegan"
    loss: str = "least_squares"  # LSGAN, as in Zhu et al. 2017
    cycle_weight: float = 10.0  # lambda of ||G_BA(G_AB(a)) - a||_1 + ||G_AB(G_BA(b)) - b||_1
    identity_weight: float = 0.5  # times cycle_weight: ||G_AB(b) - b||_1 + ||G_BA(a) - a||_1
    pool_size: int = 50  # history of generated images per discriminator


@MODELS.register("cyclegan")
class CycleGAN(TranslationModule):
    """CycleGAN (Zhu et al. 2017): G_AB, G_BA (ResNet, 9 blocks), D_A, D_B (70x70 PatchGAN),
    least-squares loss, cycle loss lambda = 10, identity loss 0.5 lambda, a 50-image history per
    D; Adam 2e-4, beta1 0.5, constant then linearly decaying learning rate."""

    Config = CycleGANConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {"g": "resnet", "d": "patchgan", "g_norm": "instance", "d_norm": "instance", "init": "default"},
        "optim": {
            "name": "adam",
            "lr_g": 2e-4,
            "lr_d": 2e-4,
            "betas": [0.5, 0.999],
            "schedule": "linear_decay",
            "decay_start": 0.5,
        },
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        c_a, c_b = self.info.shape[0], self.info.shape_b[0]
        self.loss = LOSSES.get(self.mcfg.loss, "model.loss")
        self.G_AB, self.G_BA = self.translator(c_a, c_b), self.translator(c_b, c_a)
        self.D_A, self.D_B = self.discriminator(c_a), self.discriminator(c_b)
        self.pool_a, self.pool_b = ImagePool(self.mcfg.pool_size), ImagePool(self.mcfg.pool_size)
        self.average("G_AB", "G_BA")

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        m = cfg.model
        if m.cycle_weight < 0 or m.identity_weight < 0 or m.pool_size < 0:
            raise ConfigError("bad value in 'model': cycle_weight, identity_weight and pool_size must be >= 0")

    @property
    def directions(self) -> tuple[str, ...]:
        return ("ab", "ba")

    def nets_for(self, direction: str) -> nn.Module:
        return self.generator("G_AB" if direction == "ab" else "G_BA")

    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim  # both generators in one optimizer, both discriminators in the other
        return [
            OptimizerGroup([*self.G_AB.parameters(), *self.G_BA.parameters()], o.lr_g),
            OptimizerGroup([*self.D_A.parameters(), *self.D_B.parameters()], o.lr_d),
        ]

    def training_step(self, batch: PairBatch, batch_idx: int) -> dict[str, Tensor]:
        m = self.mcfg
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: Lightning returns a list
        a, b = batch.a[0], batch.b[0]
        with self.frozen(self.D_A, self.D_B):  # G step: both generators at once
            fake_b, fake_a = self.G_AB(a), self.G_BA(b)
            adv = self.adversarial_g(self.D_B(fake_b)) + self.adversarial_g(self.D_A(fake_a))
            cycle = self.cycle_distance(self.G_BA(self.perturbed(fake_b)), a) + self.cycle_distance(
                self.G_AB(self.perturbed(fake_a)), b
            )
            g_loss = adv + m.cycle_weight * cycle
            stats = {"g/adv": adv.detach(), "g/cycle": cycle.detach()}
            if m.identity_weight > 0:
                identity = (self.G_AB(b) - b).abs().mean() + (self.G_BA(a) - a).abs().mean()
                g_loss = g_loss + m.identity_weight * m.cycle_weight * identity
                stats["g/identity"] = identity.detach()
            self.backward_step(opt_g, g_loss)
        # D step: real images against generated ones drawn partly from each D's history
        assert self.noise is not None  # set up in on_fit_start
        old_b = self.pool_b.query(fake_b.detach(), self.noise.uniform)
        old_a = self.pool_a.query(fake_a.detach(), self.noise.uniform)
        d_loss = self.adversarial_d(self.D_A(a), self.D_A(old_a)) + self.adversarial_d(self.D_B(b), self.D_B(old_b))
        self.backward_step(opt_d, d_loss)
        stats.update({"loss/g": g_loss.detach(), "loss/d": d_loss.detach()})
        self.finish_step(stats)
        return stats

    def cycle_distance(self, reconstruction: Tensor, x: Tensor) -> Tensor:
        """The distance of one cycle term: L1, as Zhu et al."""
        return (reconstruction - x).abs().mean()

    def adversarial_g(self, fake_out: Tensor) -> Tensor:
        """G's term for one D, as Zhu et al. weigh it against the cycle loss: the plain expectation
        (least squares: E[(D(G(x)) - 1)^2], without Mao et al.'s 1/2)."""
        return self.loss.g_loss(fake_out) / self.loss.scale

    def adversarial_d(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """One D's objective divided by 2, "which slows down the rate at which D learns" (Zhu et al.)."""
        return 0.5 * self.loss.d_loss(real_out, fake_out) / self.loss.scale

    def translation_grid(self, a: Tensor, b: Tensor) -> tuple[Tensor, int]:
        """Rows a -> G_AB(a) -> G_BA(G_AB(a)) | b -> G_BA(b) -> G_AB(G_BA(b)), in model space."""
        ab = self.translate(a, "ab")
        aba = self.translate(ab, "ba")
        ba = self.translate(b, "ba")
        bab = self.translate(ba, "ab")
        rows = [a.cpu(), ab.cpu(), aba.cpu(), b.cpu(), ba.cpu(), bab.cpu()]
        return torch.stack(rows, 1).flatten(0, 1), 6

    def rank_state(self) -> dict[str, Any]:
        return {"pools": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.pool_a.load_state_dict(state["pools"]["a"], self.device)
        self.pool_b.load_state_dict(state["pools"]["b"], self.device)
