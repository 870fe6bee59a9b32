"""L2-regularised multinomial logistic regression in float64 by full-batch L-BFGS: the one fit behind
the linear probe of encoders' codes (gan_lightning/metrics/probe.py) and the attribute boundaries
of learned latent directions (gan_lightning/directions.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def fit_logistic(
    x: Tensor, y: Tensor, l2: float, sample_weight: Tensor | None = None, max_iter: int = 500
) -> tuple[Tensor, Tensor]:
    """(W (D, K), b (K,)) minimising sum_i s_i CE(x_i W + b, y_i) + l2/2 ||W||^2 (the bias is not
    penalised) for rows ``x`` (N, D) and labels ``y`` in 0..K-1, K = max(y) + 1; s_i is
    ``sample_weight`` (default 1/N: the mean cross-entropy). float64 on the CPU, L-BFGS with a
    strong-Wolfe line search from zeros: deterministic."""
    x = x.detach().double().cpu().flatten(1)
    y = y.detach().long().cpu().flatten()
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need rows x (N, D) and N labels, got {tuple(x.shape)} and {len(y)}")
    s = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)
    if sample_weight is not None:
        s = sample_weight.detach().double().cpu().flatten()
    classes = int(y.max()) + 1
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = (s * F.cross_entropy(x @ w + b, y, reduction="none")).sum() + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()
