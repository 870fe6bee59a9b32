"""What an encoder learnt: a linear probe of its codes and its reconstruction error.

``probe`` (``metrics.names``, ``evaluate --metrics probe``) measures a model with an encoder E
(``has_encoder``: bigan, ali, aae, vaegan):

- ``probe/accuracy``: a multinomial logistic regression (float64, full-batch L-BFGS, a small L2
  penalty, inputs standardised by the training codes' mean and std) trained on E's codes of the
  whole training split and tested on the whole test split: the linear separability of the classes
  in code space;
- ``probe/recon_mse``: the mean squared error of G(E(x)) against x on the test split, per pixel on
  the [0, 1] scale (the decoder of each evaluated generator; the supervised AAE's gets the label).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_lightning.data.base import to_model_space
from gan_lightning.metrics.evaluator import metric, require_encoder
from gan_lightning.metrics.logistic import fit_logistic
from gan_lightning.registry import ConfigError


def linear_probe(
    train_codes: Tensor,
    train_labels: Tensor,
    test_codes: Tensor,
    test_labels: Tensor,
    l2: float = 1e-4,
    max_iter: int = 500,
) -> float:
    """Test accuracy of a multinomial logistic regression fitted on (train_codes, train_labels),
    standardised by the training codes' mean and std: ``fit_logistic`` (mean cross-entropy +
    l2/2 ||W||^2, bias unpenalised, float64, L-BFGS)."""
    x = train_codes.detach().double().cpu().flatten(1)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-12)
    w, b = fit_logistic((x - mean) / std, train_labels, l2, max_iter=max_iter)
    x_test = (test_codes.detach().double().cpu().flatten(1) - mean) / std
    with torch.no_grad():
        predicted = (x_test @ w + b).argmax(1)
    return float((predicted == test_labels.long().cpu()).double().mean())


def _split(datamodule: Any, train: bool) -> tuple[Tensor, Tensor]:
    images, labels = datamodule.split(train=train)
    if len(labels) == 0 or bool((labels < 0).any()):
        raise ConfigError(
            "metric 'probe' needs labelled images (e.g. fashion_mnist, mnist): its classifier reads the labels"
        )
    return images, labels


def encoder_scores(
    model: Any, net: Any, datamodule: Any, batch_size: int = 500, cache: dict[str, Any] | None = None
) -> dict[str, float]:
    """{accuracy, recon_mse} of ``model``'s encoder and the decoder ``net`` (see the module doc).
    ``cache`` keeps the probe of one encoder state for the next decoder (the EMA and the raw G)."""
    require_encoder(model, "probe")
    cache = {} if cache is None else cache
    key = f"probe:{id(model)}:{model.g_step}"
    if key not in cache:
        train_images, train_labels = _split(datamodule, True)
        test_images, test_labels = _split(datamodule, False)

        def codes(images: Tensor) -> Tensor:
            parts = [to_model_space(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
            return torch.cat([model.encode_from(x).cpu() for x in parts])

        test_codes = codes(test_images)
        accuracy = linear_probe(codes(train_images), train_labels, test_codes, test_labels)
        cache.clear()  # one encoder state at a time
        cache[key] = (accuracy, test_codes, test_images, test_labels)
    accuracy, test_codes, test_images, test_labels = cache[key]
    conditional = model.labels_for(1) is not None
    squared, count = 0.0, 0
    for i in range(0, len(test_images), batch_size):
        x = to_model_space(test_images[i : i + batch_size])
        y = test_labels[i : i + batch_size] if conditional else None
        recon = model.generate_from(test_codes[i : i + batch_size], net, y).cpu()
        squared += float(((recon.double() - x.double()) / 2).pow(2).sum())  # [-1, 1] -> [0, 1] scale
        count += x.numel()
    return {"accuracy": accuracy, "recon_mse": squared / count}


@metric("probe", {"accuracy": True, "recon_mse": False}, "accuracy", ("generator", "encoder"))
def _probe(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Linear-probe accuracy of E's codes (train split -> test split) and the test split's
    reconstruction error G(E(x)) (see gan_lightning/metrics/probe.py)."""
    if ctx.generator is None:
        raise ConfigError("metric 'probe' needs the model: use it in training or `evaluate`")
    model, net = ctx.generator
    return encoder_scores(model, net, ctx.datamodule, cache=ctx._cache.setdefault("probe", {}))
