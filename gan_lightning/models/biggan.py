"""BigGAN (Brock et al. 2019) on the shared loop: a cGAN with the BigGAN nets and the paper's
settings, plus what differs, through the hooks: the orthogonal regularisation of G (``g_terms``)
and truncated-normal z for sampling (``truncated``: the sampling hook, ``sample --truncation PSI``).

The nets (``nets.g=biggan``, ``nets.d=biggan``: conditional BatchNorm fed by a shared class
embedding and hierarchical z chunks, residual blocks, self-attention, projection head) are in
gan_lightning/nets/biggan.py; ``model.name=cgan`` takes them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.models.conditional import CGAN, CGANConfig
from gan_lightning.models.gan import Judged, Terms
from gan_lightning.nets.biggan import ClassEmbedding
from gan_lightning.registry import MODELS, ConfigError


def orthogonal_regularizer(net: nn.Module) -> Tensor:
    """sum over weight matrices W of ||W W^T * (1 - I)||_F^2 (Brock et al. 2019, eq. 3, without beta).

    Each weight is a matrix with one row per output filter (conv weights flattened to
    (out, in*k*k)); W W^T holds the filters' pairwise inner products, and only the off-diagonal
    ones are penalised (the paper's relaxation: filters' norms are free). Under spectral norm the
    raw weight (the parameter) is regularised. Embeddings (class tables, not maps of activations)
    and 1-D parameters (biases, BatchNorm and attention scales) are left out."""
    skip = {id(p) for m in net.modules() if isinstance(m, (nn.Embedding, ClassEmbedding)) for p in m.parameters()}
    total: Tensor | None = None
    for p in net.parameters():
        if p.ndim < 2 or id(p) in skip:
            continue
        w = p.reshape(p.shape[0], -1)
        gram = w @ w.T
        off = gram - torch.diag_embed(torch.diagonal(gram))
        term = off.pow(2).sum()
        total = term if total is None else total + term
    assert total is not None, "the generator has no weight matrix"
    return total


MIN_PSI = 0.01


def redraw_outside(z: Tensor, psi: float, generator: torch.Generator | None = None) -> Tensor:
    """A copy of z ~ N(0, I) where every value with |z| > psi is drawn again from N(0, 1) (on
    z's device, from ``generator``) until none is left: the values then follow N(0, 1) truncated
    to [-psi, psi] (Brock et al. 2019, Sec. 4.1, the truncation trick); values inside stay."""
    if not psi >= MIN_PSI:  # a value is kept with probability ~0.8 psi: a tiny psi redraws for minutes
        raise ConfigError(
            f"bad value for '--truncation': BigGAN's threshold psi must be >= {MIN_PSI} (Brock et al.'s smallest "
            f"is 0.04), got {psi}"
        )
    z = z.clone()
    outside = z.abs() > psi
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=z.dtype, device=z.device)
        outside = z.abs() > psi
    return z


@dataclass
class BigGANConfig(CGANConfig):
    name: str = "biggan"
    ortho: float = 1e-4  # beta of G's orthogonal regularisation (Brock et al. 2019, eq. 3); 0: off


@MODELS.register("biggan")
class BigGAN(CGAN):
    """BigGAN (Brock et al. 2019): class-conditional G(z, y) with conditional BatchNorm and
    hierarchical latents, projection D, hinge loss, spectral norm in G and D, self-attention,
    orthogonal regularisation of G, an EMA of G for sampling, and the truncation trick."""

    Config = BigGANConfig
    truncation_trick = True  # each z_i redrawn until |z_i| <= psi (so psi = 1 already truncates)
    # the paper's ImageNet 128x128 settings (Sec. 3, 4 and App. B-C): hinge loss, SN in G and D,
    # two D steps per G step, Adam lr_G 5e-5 / lr_D 2e-4 with betas (0, 0.999), orthogonal
    # init, orthogonal regularisation beta 1e-4, EMA of G with decay 0.9999, z of 120 dims in
    # chunks, a 128-dim shared class embedding, self-attention at half the output resolution
    # (64 of 128 in the paper: 16 for 32x32 images). The paper fixes no EMA start: ours is
    # step 1,000 (a copy of G before it, so the average skips the first updates).
    defaults: ClassVar[dict[str, Any]] = {
        "model": {
            "loss": "hinge",
            "sn_g": True,
            "sn_d": True,
            "n_critic": 2,
            "z_dim": 120,
            "embed_dim": 128,
            "ema": {"decay": 0.9999, "start": 1000},
        },
        "nets": {"g": "biggan", "d": "biggan", "init": "orthogonal", "attention_res": 16, "d_norm": "none"},
        "optim": {"name": "adam", "lr_g": 5e-5, "lr_d": 2e-4, "betas": [0.0, 0.999]},
    }

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super().validate(cfg)
        if cfg.model.ortho < 0:
            raise ConfigError(f"bad value for 'model.ortho': beta must be >= 0 (0 turns it off), got {cfg.model.ortho}")

    def g_terms(self, fake: Judged) -> Terms:
        """cGAN's G terms + beta * the orthogonal regulariser of G's weights."""
        terms = super().g_terms(fake)
        beta = float(self.mcfg.ortho)
        if beta == 0:
            return terms
        ortho = orthogonal_regularizer(self.G)
        return Terms(terms.loss + beta * ortho, {**terms.stats, "g/ortho": ortho.detach()})

    def truncated(
        self, z: Tensor, net: nn.Module, psi: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, nn.Module]:
        """The sampling hook (``sample(..., truncation=psi)``, ``gan-lightning sample --truncation
        PSI``): the values of ``z`` (from ``draw_z``) with |z| > psi redrawn from ``generator``,
        the net unchanged: z then follows N(0, I) truncated to [-psi, psi]. psi is a threshold:
        smaller psi, higher fidelity and less variety; a psi above every |z| leaves the samples
        as they were."""
        return redraw_outside(z, psi, generator), net
