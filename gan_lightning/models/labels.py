"""Labels for class-conditional sampling, at the training data's class mix.

A conditional generator is measured (FID, class KL, CAS) against the data, so it is asked for
each class in the data's proportions: drawn at random in training, in exact proportions for
metrics and ``sample``. A uniform mix (or none known) keeps the classes in turn and the uniform
integer draw, so runs on balanced data (Fashion-MNIST) are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gan_lightning.models.noise import NoiseSource


def is_uniform(freqs: Sequence[float]) -> bool:
    """Whether ``freqs`` (a class's share each) is empty or the same for every class."""
    return not freqs or max(freqs) - min(freqs) < 1e-12


def proportional_labels(n: int, freqs: Sequence[float]) -> Tensor:
    """``n`` labels with each class's count within one of ``n * freqs[c]`` (largest remainders, ties
    to the lower class), interleaved so that every prefix keeps the proportions; a uniform mix gives
    ``arange(n) % C``. Empty ``freqs``: an empty tensor (the caller decides)."""
    if not freqs or n <= 0:
        return torch.zeros(0, dtype=torch.long)
    p = torch.tensor(list(freqs), dtype=torch.float64)
    p = p / p.sum()
    quota = n * p
    counts = quota.floor().long()
    short = n - int(counts.sum())
    if short > 0:
        remainder = quota - counts
        order = sorted(range(len(p)), key=lambda c: (-round(float(remainder[c]), 12), c))
        counts[order[:short]] += 1
    # the k-th label of class c sits at (k + 1/2) / count_c along [0, 1]; sorted by position, ties by class
    classes = torch.repeat_interleave(torch.arange(len(p)), counts)
    within = torch.cat([torch.arange(int(k), dtype=torch.float64) for k in counts])
    position = (within + 0.5) / counts[classes].double()
    key = torch.round(position * 1e9).long() * len(p) + classes  # exact ties: the lower class first
    return classes[torch.argsort(key)]


def class_cdf(freqs: Sequence[float], device: torch.device | str = "cpu") -> Tensor | None:
    """The cumulative class shares (float64, on ``device``) that ``draw_from`` reads; None for a uniform
    mix, which is drawn as uniform integers."""
    if is_uniform(freqs):
        return None
    return torch.tensor(list(freqs), dtype=torch.float64, device=device).cumsum(0)


def draw_from(noise: NoiseSource | Any, n: int, num_classes: int, cdf: Tensor | None) -> Tensor:
    """``n`` labels (this rank's share of a global draw) from a ``class_cdf``; uniform integers for None.
    No host-to-device copy when ``cdf`` is on the draw's device (perf.fast captures this step)."""
    if cdf is None:
        return noise.randint(num_classes, n)
    u = noise.uniform(n).double()  # the only draw, so perf.fast's tape replays it
    cdf = cdf.to(u.device)
    return torch.searchsorted(cdf, u * cdf[-1], right=True).clamp_max(num_classes - 1)


def draw_labels(noise: NoiseSource | Any, n: int, freqs: Sequence[float]) -> Tensor:
    """``n`` labels drawn from the class mix ``freqs`` (``draw_from`` its ``class_cdf``)."""
    return draw_from(noise, n, len(freqs), class_cdf(freqs))
