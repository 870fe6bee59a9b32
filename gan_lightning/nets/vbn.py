"""Virtual batch normalisation (Salimans et al. 2016, section 3.4): each example is normalised
with the statistics of a fixed reference batch together with itself, so G's output for one z
does not depend on the other z of its batch.

``nets.g_norm=virtual_batch`` puts ``VirtualBatchNorm`` layers in G and wraps G in
``VirtualBatchGenerator``, which runs the reference batch through G before each forward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

REFERENCE_SIZE = 64
REFERENCE_SEED = 0x7BA7C4


class VirtualBatchNorm(nn.Module):
    """Normalises per feature (dim 1). In the reference pass the statistics are the reference
    batch's; afterwards example i uses (n mu_ref + mu_i) / (n + 1) and the same mix of second
    moments, mu_i taken over its own spatial positions."""

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.reference: tuple[Tensor, Tensor, int] | None = None

    def _affine(self, x: Tensor, mean: Tensor, meansq: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        var = (meansq - mean * mean).clamp_min(0.0)
        return (x - mean) / (var + self.eps).sqrt() * self.weight.view(shape) + self.bias.view(shape)

    def forward(self, x: Tensor) -> Tensor:
        spatial = tuple(range(2, x.dim()))
        if self.reference is None:  # the reference pass: record and use the batch's statistics
            dims = (0, *spatial)
            mean, meansq = x.mean(dims, keepdim=True), (x * x).mean(dims, keepdim=True)
            self.reference = (mean, meansq, x.shape[0])
            return self._affine(x, mean, meansq)
        ref_mean, ref_meansq, n = self.reference
        own_mean = x.mean(spatial, keepdim=True) if spatial else x
        own_meansq = (x * x).mean(spatial, keepdim=True) if spatial else x * x
        w = 1.0 / (n + 1)
        return self._affine(x, (1 - w) * ref_mean + w * own_mean, (1 - w) * ref_meansq + w * own_meansq)


class VirtualBatchGenerator(nn.Module):
    """G with virtual batch norm: every forward first passes the fixed reference inputs (the
    gradient flows through their statistics, as in Salimans et al.), then the given ones."""

    def __init__(self, net: nn.Module, in_features: int):
        super().__init__()
        self.net = net
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        self.register_buffer("reference_z", torch.randn(REFERENCE_SIZE, in_features, generator=g))

    def _layers(self) -> list[VirtualBatchNorm]:
        return [m for m in self.net.modules() if isinstance(m, VirtualBatchNorm)]

    def forward(self, z: Tensor) -> Tensor:
        layers = self._layers()
        for layer in layers:
            layer.reference = None
        try:
            self.net(self.reference_z.to(z.dtype))
            return self.net(z)
        finally:
            for layer in layers:
                layer.reference = None
