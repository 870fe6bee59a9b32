"""Layers that let D compare the samples of a batch, against mode collapse: minibatch
discrimination (Salimans et al. 2016) and the minibatch standard deviation (Karras et al. 2018).

Both sit between a critic's feature trunk and its head (``nets.d_minibatch``), so they work
with every registered critic, the conditional ones included."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_lightning.nets.layers import Critic


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, section 3.2: M_i = f(x_i) T (``kernels`` rows of ``kernel_dim``),
    c_b(i, j) = exp(-||M_i,b - M_j,b||_1), o(x_i)_b = sum_j c_b(i, j); returns o (N, kernels)."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Linear(in_features, kernels * kernel_dim, bias=False)  # a Linear: spectral norm covers it
        self.init_own_parameters()

    def init_own_parameters(self) -> None:
        """T ~ N(0, 0.05), the improved-GAN code's MinibatchLayer (Salimans et al. 2016); re-applied after a
        net-wide ``nets.init`` (``apply_init``), which would otherwise re-draw T at its own scale."""
        nn.init.normal_(self.T.weight, 0.0, 0.05)

    def forward(self, f: Tensor) -> Tensor:
        m = self.T(f).view(-1, self.kernels, self.kernel_dim).transpose(0, 1)  # (kernels, N, kernel_dim)
        l1 = torch.cdist(m, m, p=1)  # (kernels, N, N); half the time of broadcasting (N, N, kernels, dim)
        return (torch.exp(-l1).sum(2) - 1.0).transpose(0, 1)  # minus the j = i term, exp(0) = 1


class MinibatchStddev(nn.Module):
    """Karras et al. 2018, section 3: the standard deviation of each feature over the batch,
    averaged over features: one value, appended to every sample's features."""

    def forward(self, f: Tensor) -> Tensor:
        std = (f.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        return std.expand(f.shape[0], 1)


class MinibatchCritic(Critic):
    """A critic whose head also reads a minibatch layer's output beside the trunk's features."""

    def __init__(self, critic: Critic, kind: str):
        super().__init__()
        self.inner = critic
        self.inner.head = nn.Identity()  # replaced by the head below
        if kind == "discrimination":
            self.minibatch: nn.Module = MinibatchDiscrimination(critic.feature_dim)
            extra = self.minibatch.kernels
        else:
            self.minibatch, extra = MinibatchStddev(), 1
        self.feature_dim = critic.feature_dim + extra
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: Tensor) -> Tensor:
        f = self.inner.features(x)
        return torch.cat([f, self.minibatch(f)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


# name -> whether it couples a per-sample penalty's input gradients: minibatch discrimination makes each sample's
# output a learned function of every other sample (refused with gp/r1/dragan, as BatchNorm in D); the stddev is
# one batch-mean scalar, and ProGAN's own partner of WGAN-GP (Karras et al. 2018)
MINIBATCH_LAYERS: dict[str, bool] = {"none": False, "discrimination": True, "stddev": False}
