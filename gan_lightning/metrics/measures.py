"""The rest of the GAN evaluation table (Borji 2019, "Pros and cons of GAN evaluation measures"),
registered by name for ``metrics.names``, ``evaluate --metrics`` and studies.

The math lives in its own modules, each tested against a reference written from the
definition: ``label_measures`` (m-IS, MODE score, AM score), ``two_sample`` (MMD, 1-NN, C2ST,
Wasserstein critic), ``bins`` (NDB), ``birthday`` (support size), ``image_measures`` (SSIM,
PSNR, power spectrum, Parzen window), ``gan_lightning.inversion`` (reconstruction error). Here
each measure only chooses its inputs: features of the generated set (extracted once per
evaluation and shared), the reference split, class probabilities or pixels.

Real sets are the evaluator's reference split (``metrics.ref_split``: train during training, the
test split in ``evaluate``); two-sample measures use as many real as generated samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_lightning.metrics.bins import kmeans, ndb
from gan_lightning.metrics.birthday import birthday_test, save_duplicate_pairs
from gan_lightning.metrics.evaluator import metric, subset
from gan_lightning.metrics.image_measures import parzen_log_likelihood, spectrum_distance
from gan_lightning.metrics.label_measures import am_score, mode_score, modified_inception_score
from gan_lightning.metrics.two_sample import c2st, mmd, one_nn_accuracy, wasserstein_critic
from gan_lightning.registry import ConfigError


def _equal_sets(ctx: Any, fake: Tensor) -> tuple[Tensor, Tensor]:
    """(real, fake) features of equal size n (capped by ``prdc_n``): a seeded subset of the reference."""
    real = ctx.reference.feats
    n = min(len(real), len(fake), ctx.prdc_n)
    return real[subset(len(real), n)], fake[:n]  # generated samples are i.i.d.: their first n will do


# ----------------------------------------------------------------------------- label-based
@metric("mis", {"mis": True}, "mis", "is_probs")
def _mis(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Modified IS (Gurumurthy et al. 2017): within-class diversity of the predicted classes."""
    return {"mis": modified_inception_score(data["is_probs"])}


@metric("mode_score", {"mode_score": True}, "mode_score", "is_probs")
def _mode_score(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """MODE score (Che et al. 2017) against p*(y), the classifier's mean prediction on the reference."""
    return {"mode_score": mode_score(data["is_probs"], ctx.reference_marginal("is_probs"))}


@metric("am", {"am": False}, "am", "is_probs")
def _am(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """AM score (Zhou et al. 2018), lower is better, against the same p*(y)."""
    return {"am": am_score(data["is_probs"], ctx.reference_marginal("is_probs"))}


# ----------------------------------------------------------------------------- two-sample
@metric("mmd", {"mmd": False}, "mmd", "feats")
def _mmd(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Unbiased MMD^2, Gaussian kernel, median-heuristic bandwidth on the pooled set."""
    return {"mmd": mmd(*_equal_sets(ctx, data["feats"]))}


@metric("nn1", {"accuracy": None, "gap": False, "accuracy_real": None, "accuracy_fake": None}, "gap", "feats")
def _nn1(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Leave-one-out 1-NN two-sample accuracy (Xu et al. 2018); 0.5 is ideal, so ``gap`` =
    |accuracy - 0.5| carries the direction (below 0.5 means overfitting to the real set)."""
    out = one_nn_accuracy(*_equal_sets(ctx, data["feats"]))
    return {**out, "gap": abs(out["accuracy"] - 0.5)}


@metric("c2st", {"accuracy": False, "p_value": True}, "accuracy", "feats")
def _c2st(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy and p-value."""
    out = c2st(*_equal_sets(ctx, data["feats"]), seed=0)
    return {"accuracy": out["accuracy"], "p_value": out["p_value"]}


@metric("wcritic", {"wcritic": False}, "wcritic", "feats")
def _wcritic(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """A WGAN-GP critic trained after the fact on half the sets; its estimate on the other half."""
    return {"wcritic": wasserstein_critic(*_equal_sets(ctx, data["feats"]), seed=0)["wcritic"]}


# ----------------------------------------------------------------------------- support and bins
@metric("birthday", {"birthday_s": True, "support": True}, "birthday_s", "feats")
def _birthday(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Birthday paradox test (Arora & Zhang 2017): the batch size with near-duplicates w.p. >= 1/2,
    near meaning closer than the 0.1 % quantile of the reference's nearest-neighbour distances.
    With ``artifacts_prefix`` set (``evaluate``), the closest pairs are drawn to <prefix>-birthday_pairs[_raw].png."""
    real, fake = _equal_sets(ctx, data["feats"])
    out: dict[str, Any] = birthday_test(fake, real=real, seed=0)
    if ctx.artifacts_prefix and "pixels" in data:
        suffix = "_" + ctx.prefix.strip("/") if ctx.prefix else ""
        path = Path(f"{ctx.artifacts_prefix}-birthday_pairs{suffix}.png")
        save_duplicate_pairs(data["pixels"][: len(fake)], out["pairs"], path, distances=out["pair_distances"])
    return {"birthday_s": float(out["birthday_s"]), "support": float(out["support"])}


def ndb_halves(n: int) -> tuple[Tensor, Tensor]:
    """(fit, held): a seeded split of n reference rows into the half the bins are fitted on and the
    half compared with the samples."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return perm[: n // 2], perm[n // 2 :]


@metric("ndb", {"ndb": False, "ndb_share": False, "js": False}, "ndb_share", "feats")
def _ndb(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """NDB (Richardson & Weiss 2018) with ``ndb_bins`` k-means bins. The bins are fitted on one
    half of the reference and its other half is compared: proportions of the points that made a
    centroid are biased towards it, which flags bins of a perfect generator in high dimension."""
    real = ctx.reference.feats
    fit, held = ndb_halves(len(real))
    key = f"ndb_centroids:{ctx.ndb_bins}:{len(real)}"
    if key not in ctx._cache:
        ctx._cache[key] = kmeans(real[fit], ctx.ndb_bins, seed=0, iters=50)[0]
    out: dict[str, Any] = ndb(real[held], data["feats"], ctx.ndb_bins, centroids=ctx._cache[key])
    return {"ndb": float(out["ndb"]), "ndb_share": float(out["ndb_share"]), "js": float(out["js"])}


# ----------------------------------------------------------------------------- pixels
@metric("spectrum", {"spectrum": False, "spectrum_hf_ratio": None}, "spectrum", "pixels")
def _spectrum(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Distance of the azimuthally averaged power spectra (Durall et al. 2020), log10 scale."""
    fake = data["pixels"]
    return spectrum_distance(ctx.reference_pixels(len(fake)), fake)


@metric("parzen", {"parzen_ll": True, "parzen_se": None, "parzen_sigma": None}, "parzen_ll", "pixels")
def _parzen(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Parzen-window log-likelihood (nats per image) of the reference images under a Gaussian KDE
    on the generated pixels, sigma chosen on a held-out fifth of them. A poor likelihood
    estimate in high dimension (Theis et al. 2016): see image_measures.parzen_log_likelihood."""
    fake = data["pixels"]
    out = parzen_log_likelihood(fake, ctx.reference_pixels(len(fake)), seed=0)
    return {k: out[k] for k in ("parzen_ll", "parzen_se", "parzen_sigma")}


@metric("cas", {"cas": True, "cas_real": None, "cas_ratio": True}, "cas", ("pixels", "requested"))
def _cas(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Classification accuracy score (Ravuri & Vinyals 2019): the domain classifier's recipe trained
    on the generated images with the labels they were asked for, its accuracy on the real test
    split, beside the same recipe trained on as many real training images."""
    from gan_lightning.metrics.classifier import to_classifier_input, train_classifier

    if "requested" not in data:
        raise ConfigError("metric 'cas' needs a class-conditional model (cgan, acgan): it trains on labelled samples")
    dm = ctx.datamodule
    if not getattr(dm, "domain_classifier", False):
        raise ConfigError(f"metric 'cas' trains the domain classifier's recipe, which '{ctx.info.name}' data lacks")
    resize = getattr(dm.dcfg, "resize", "pad")
    fake = to_classifier_input(data["pixels"], resize).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    labels = data["requested"].long()
    test = ctx.cas_test if ctx.cas_test is not None else dm.split(train=False, size=28)

    def train(images: Tensor, targets: Tensor, name: str) -> float:
        with torch.random.fork_rng(devices=[]):  # seeded inside; the caller's random state is left as it was
            return float(train_classifier((images, targets), test, name, verbose=False)[1]["test_accuracy"])

    acc = train(fake, labels, f"{ctx.info.name}-generated")
    key = f"cas_real:{len(fake)}"
    if key not in ctx._cache:
        images, real_labels = dm.split(train=True, size=28)
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: len(fake)]
        ctx._cache[key] = train(images[idx], real_labels[idx], ctx.info.name)
    acc_real = ctx._cache[key]
    return {"cas": acc, "cas_real": acc_real, "cas_ratio": acc / acc_real if acc_real > 0 else float("nan")}


@metric("recon", {"recon": False, "recon_rmse": False}, "recon", ("generator",))
def _recon(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Reconstruction error: the first ``recon_n`` reference images, each matched by the z that
    minimises ||G(z) - x||^2 (``recon_steps`` Adam steps from a seeded start; class-conditional
    models generate with the image's own label); the mean squared error per pixel and its root, on
    the [0, 1] scale. The same on every DDP rank (seeded)."""
    from gan_lightning.inversion import invert

    if ctx.generator is None:
        raise ConfigError("metric 'recon' needs the generator: use it in training or `evaluate`")
    model, net = ctx.generator
    y = None
    if model.labels_for(1) is not None:
        if not getattr(model, "class_conditional", False):
            raise ConfigError("metric 'recon' inverts G(z) or G(z, class); this generator takes other codes")
        y = ctx.reference_labels(ctx.recon_n).to(model.device)
        if bool((y < 0).any()):
            raise ConfigError("metric 'recon' of a class-conditional model needs labelled reference images")
    targets = ctx.reference_pixels(ctx.recon_n).to(model.device) * 2 - 1  # model space
    was_training = net.training
    net.eval()
    try:
        _, err = invert(lambda z: model.generate(z, net, y), targets, model.z_dim, steps=ctx.recon_steps, seed=0)
    finally:
        net.train(was_training)
    mse01 = err.double().cpu() / 4  # [-1, 1] -> [0, 1] scale
    return {"recon": float(mse01.mean()), "recon_rmse": float(mse01.sqrt().mean())}


@metric("ssim", {}, "", (), kinds=("pair",))
def _ssim(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Translation with a ground truth: computed by metrics.translation (``<dir>/ssim``)."""
    raise ConfigError("'ssim' is computed by the TranslationMetrics callback (tasks with a true translation)")


@metric("psnr", {}, "", (), kinds=("pair",))
def _psnr(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Translation with a ground truth: computed by metrics.translation (``<dir>/psnr``)."""
    raise ConfigError("'psnr' is computed by the TranslationMetrics callback (tasks with a true translation)")
