"""Generator and discriminator nets, chosen by name (``nets.g``, ``nets.d``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from gan_lightning.nets.biggan import BigGANDiscriminator, BigGANGenerator
from gan_lightning.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lightning.nets.layers import Critic, add_spectral_norm, dcgan_init_, orthogonal_init_
from gan_lightning.nets.minibatch import MINIBATCH_LAYERS, MinibatchCritic
from gan_lightning.nets.mlp import MLPDiscriminator, MLPGenerator
from gan_lightning.nets.progan import ProGANDiscriminator, ProGANGenerator
from gan_lightning.nets.style import StyleCritic, StyleGenerator
from gan_lightning.nets.vbn import VirtualBatchGenerator
from gan_lightning.registry import ConfigError, Registry
from gan_lightning.schema import NetsConfig

Shape = tuple[int, ...]
GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator net")
DISCRIMINATORS: Registry[Callable[..., Critic]] = Registry("discriminator net")


def _image_shape(shape: Shape, net: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"net '{net}' needs square images (C, H, W), but the data has shape {shape}; use nets.g=mlp")
    return shape


@GENERATORS.register("mlp")
def _mlp_g(nets: Any, shape: Shape, z_dim: int) -> nn.Module:
    return MLPGenerator(z_dim, shape, nets.mlp_hidden, nets.mlp_layers, nets.g_norm, image=len(shape) == 3)


def with_capabilities(**capabilities: Any) -> Callable[[Any], Any]:
    """Marks a net factory function with capabilities (see ``capability``), as a net class has them."""

    def mark(factory: Any) -> Any:
        for name, value in capabilities.items():
            setattr(factory, name, value)
        return factory

    return mark


@DISCRIMINATORS.register("mlp")
@with_capabilities(maxout_units=True, unnormalised_by_default=True)  # PacGAN's MLP critics have no BatchNorm
def _mlp_d(nets: Any, shape: Shape, norm: str) -> Critic:
    hidden, layers = nets.mlp_d_hidden or nets.mlp_hidden, nets.mlp_d_layers or nets.mlp_layers
    return MLPDiscriminator(shape, hidden, layers, norm, maxout=nets.mlp_maxout)


@GENERATORS.register("dcgan")
def _dcgan_g(nets: Any, shape: Shape, z_dim: int) -> nn.Module:
    return DCGANGenerator(z_dim, _image_shape(shape, "dcgan"), nets.g_width, nets.g_norm)


@DISCRIMINATORS.register("dcgan")
def _dcgan_d(nets: Any, shape: Shape, norm: str) -> Critic:
    return DCGANDiscriminator(_image_shape(shape, "dcgan"), nets.d_width, norm)


GENERATORS.register("style")(StyleGenerator)
DISCRIMINATORS.register("style")(StyleCritic)
GENERATORS.register("biggan")(BigGANGenerator)
DISCRIMINATORS.register("biggan")(BigGANDiscriminator)
GENERATORS.register("progan")(ProGANGenerator)
DISCRIMINATORS.register("progan")(ProGANDiscriminator)
INITS = {"dcgan": dcgan_init_, "orthogonal": orthogonal_init_}  # nets.init; 'default' keeps PyTorch's


def capability(net: Any, name: str, default: bool = False) -> bool:
    """A registered net's capability: its class attribute ``name`` (``default`` where it has none)."""
    return bool(getattr(net, name, default))


def takes_labels(net: Any) -> bool:
    """Whether a registered net class is class-conditional: G(z, y) or D(x, y) (its ``takes_labels``)."""
    return capability(net, "takes_labels")


def minibatch_kind(nets: Any, factory: Any) -> str:
    """``nets.d_minibatch``, checked against the D that ``factory`` builds: no minibatch layer on a
    D whose head reads labels, nor on one that has its own batch-coupled layer (``batch_coupled``)."""
    kind = nets.get("d_minibatch", "none")
    if kind not in MINIBATCH_LAYERS:
        raise ConfigError(f"bad value for 'nets.d_minibatch': one of {', '.join(MINIBATCH_LAYERS)}, got '{kind}'")
    if kind != "none" and takes_labels(factory):
        raise ConfigError(
            f"bad value for 'nets.d_minibatch': the minibatch layer replaces D's head, which in '{nets.d}' "
            "also reads the label (projection); use nets.d_minibatch=none"
        )
    if kind != "none" and capability(factory, "batch_coupled"):
        raise ConfigError(
            f"bad value for 'nets.d_minibatch': the '{nets.d}' critic has its own minibatch standard deviation "
            "layer, so a second minibatch layer would apply the statistic twice; use nets.d_minibatch=none"
        )
    return str(kind)


def validate_nets(nets: Any, model: str, feeds_noise_inputs: bool) -> None:
    """Config checks of ``nets.*`` against the capabilities of the registered nets they name, for
    the models that build G and D from GENERATORS and DISCRIMINATORS: what a net needs from the
    model (``noise_inputs``), and keys that would otherwise be accepted and ignored."""
    g, d = GENERATORS.get(nets.g, "nets.g"), DISCRIMINATORS.get(nets.d, "nets.d")
    if capability(g, "noise_inputs") and not feeds_noise_inputs:
        raise ConfigError(
            f"bad value for 'nets.g': '{nets.g}' draws noise inputs in every layer during training, which model "
            f"'{model}' does not feed from its per-rank noise source (the global RNG would break per-rank noise "
            "under DDP and perf.fast's replay); use model.name=stylegan, or another generator (nets.g=dcgan)"
        )
    minibatch_kind(nets, d)
    if nets.attention_res and not (capability(g, "has_attention") or capability(d, "has_attention")):
        raise ConfigError(
            f"bad value for 'nets.attention_res': neither nets.g={nets.g} nor nets.d={nets.d} has a self-attention "
            "layer, so it would be ignored; use nets.g=biggan or nets.d=biggan, or nets.attention_res=0"
        )
    if not capability(g, "style_options"):
        defaults = NetsConfig()
        for key in ("style_norm", "style_mapping_layers"):
            if nets[key] != getattr(defaults, key):
                raise ConfigError(
                    f"bad value for 'nets.{key}': it configures the style generator, and nets.g={nets.g} is "
                    f"not one, so it would be ignored; use nets.g=style, or leave nets.{key}={getattr(defaults, key)}"
                )


def apply_init(net: nn.Module, name: str) -> None:
    """``nets.init`` over the whole net ('default' keeps PyTorch's), then each layer that has its paper's
    own init (``init_own_parameters``) re-applies it."""
    if name in INITS:
        INITS[name](net)
        for m in net.modules():
            own = getattr(m, "init_own_parameters", None)
            if callable(own):
                own()


def build_generator(
    nets: Any, shape: Shape, z_dim: int, spectral_norm: bool = False, num_classes: int = 0, embed_dim: int = 0
) -> nn.Module:
    """G by name; with ``nets.g_norm=virtual_batch`` wrapped to pass its reference batch first.
    A class-conditional net (``takes_labels``) is also given ``num_classes`` and ``embed_dim``."""
    factory = GENERATORS.get(nets.g, "nets.g")
    if takes_labels(factory):
        if num_classes < 1:
            raise ConfigError(f"bad value for 'nets.g': '{nets.g}' takes class labels; use it with a conditional model")
        g = factory(nets, tuple(shape), z_dim, num_classes=num_classes, embed_dim=embed_dim)
    else:
        g = factory(nets, tuple(shape), z_dim)
    apply_init(g, str(nets.init))
    if spectral_norm:
        add_spectral_norm(g)
    return VirtualBatchGenerator(g, z_dim) if nets.g_norm == "virtual_batch" else g


def build_discriminator(
    nets: Any, shape: Shape, norm: str, spectral_norm: bool = False, num_classes: int = 0
) -> Critic:
    """D by name; ``nets.d_minibatch`` adds a minibatch layer before its head. A class-conditional
    net (``takes_labels``: D(x, y)) is also given ``num_classes``."""
    factory = DISCRIMINATORS.get(nets.d, "nets.d")
    kind = minibatch_kind(nets, factory)
    if takes_labels(factory):
        if num_classes < 1:
            raise ConfigError(f"bad value for 'nets.d': '{nets.d}' takes class labels; use it with a conditional model")
        d = factory(nets, tuple(shape), norm, num_classes=num_classes)
    else:
        d = factory(nets, tuple(shape), norm)
    if kind != "none":
        d = MinibatchCritic(d, kind)
    apply_init(d, str(nets.init))
    return add_spectral_norm(d) if spectral_norm else d
