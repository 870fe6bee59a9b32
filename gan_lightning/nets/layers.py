"""Building blocks shared by the nets: normalisation by name, spectral norm, init."""

from __future__ import annotations

from typing import TypeVar

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_lightning.nets.vbn import VirtualBatchNorm
from gan_lightning.registry import ConfigError

NORMS = ("batch", "instance", "layer", "virtual_batch", "none")
ModuleT = TypeVar("ModuleT", bound=nn.Module)


class Critic(nn.Module):
    """A discriminator made of a feature trunk and a head giving one logit from the features.
    The conditional models read the features (projection critic, ACGAN's classifier, InfoGAN's Q)."""

    feature_dim: int
    head: nn.Module

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError


def norm2d(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer by name; 'layer' normalises each sample over (C, H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "virtual_batch":
        return VirtualBatchNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown normalisation '{kind}'; choose one of {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "virtual_batch":
        return VirtualBatchNorm(features)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"normalisation '{kind}' is not available for MLP layers; use batch, layer, virtual_batch, none")


def add_spectral_norm(module: ModuleT, _seen: set[int] | None = None) -> ModuleT:
    """Spectral normalisation (Miyato et al. 2018) on every conv, linear and embedding layer (the
    projection critic's class embedding, Miyato & Koyama 2018), in place; a layer reachable by two names
    (BiGAN's joint critic shares its top MLP's head) is normalised once."""
    seen = set() if _seen is None else _seen
    for name, child in list(module.named_children()):
        if id(child) in seen:
            continue
        seen.add(id(child))
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            setattr(module, name, spectral_norm(child))
        else:
            add_spectral_norm(child, seen)
    return module


def dcgan_init_(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0 (Radford et al. 2016)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, VirtualBatchNorm) or (
            isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.InstanceNorm2d)) and m.affine
        ):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def orthogonal_init_(module: nn.Module) -> None:
    """Orthogonal weights (Saxe et al. 2014; BigGAN's init, Brock et al. 2019) for conv, linear and
    embedding layers, biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(m.weight)
            bias = getattr(m, "bias", None)
            if bias is not None:
                nn.init.zeros_(bias)
