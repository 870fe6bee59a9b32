"""Image-to-image metrics on the test split, in each direction a model translates:
L1, SSIM and PSNR against the true translation (where the task has one), FID of the translations against real
target-domain images, and label agreement: the target domain's classifier labels the
translation as the class of the input (fashion_edges has labels; folders do not), beside its
ceiling (the classifier's agreement on the true targets) and the share of the ceiling reached.
A task with a model-free baseline (super-resolution: bicubic upsampling) has the same measures of it.
Models that translate both ways on a task with true pairs also get the check for hidden codes (Chu et al.
2017): ``round_trip_l1`` through G's own translation and ``hidden_code_ratio``, the way back's L1 from the
true target images over it (about 1 when both directions are right; far above 1 when the round trip carries
what the true target images lack: a code hidden in G's translations, or errors of the two directions that cancel)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_lightning.data.base import to_model_space
from gan_lightning.metrics.frechet import fid_from_features
from gan_lightning.metrics.image_measures import psnr, ssim

DIRECTIONS = {
    "l1": False,
    "ssim": True,
    "psnr": True,
    "fid": False,
    "agreement": True,
    "agreement_ceiling": True,
    "agreement_share": True,
    "round_trip_l1": False,
    "hidden_code_ratio": False,
}


def domain_classifiers(dm: Any, verbose: bool = False) -> dict[str, Any]:
    """{'a': classifier of domain A, 'b': of domain B} for the domains the data module has a
    labelled view of (``domain_views``)."""
    from gan_lightning.metrics.classifier import get_classifier

    return {k: get_classifier(view, verbose=verbose) for k, view in dm.domain_views().items()}


def translation_features(
    dm: Any, features: str = "classifier", device: str = "cpu", verbose: bool = False
) -> tuple[dict[str, Any], Any]:
    """(domain classifiers, Inception or None) on ``device``: the feature nets the translation measures use;
    Inception only for a task without classifiers and ``features='inception'``."""
    classifiers = {k: c.to(device) for k, c in domain_classifiers(dm, verbose=verbose).items()}
    inception = None
    if not classifiers and features == "inception":
        from gan_lightning.metrics.features import InceptionFeatures

        inception = InceptionFeatures().to(device)
    return classifiers, inception


def describe_translation_measures(classifiers: dict[str, Any], dm: Any = None) -> dict[str, Any]:
    """What a run's or an evaluation's JSON says about the translation measures, their classifiers and, where the
    data module records it (folder data), where its test images came from."""
    described = {
        "metrics": "image-to-image: L1 to the true translation, FID and label agreement on the test split",
        "classifiers": {
            k: {f: c.meta[f] for f in ("dataset", "fingerprint", "test_accuracy")} for k, c in classifiers.items()
        },
    }
    if getattr(dm, "test_split", None):
        described["test_images"] = dict(dm.test_split)
    return described


# what a feature net gave on a task's target images, by (the net's id, the target's name, n): the test split does
# not change during a run, so an evaluation that shares the memo runs the nets on the translations only
TargetMemo = dict[tuple[int, str, int], tuple[Tensor, Tensor | None]]


@torch.no_grad()
def translation_metrics(
    model: Any,
    dm: Any,
    n: int = 10000,
    classifiers: dict[str, Any] | None = None,
    inception: Any = None,
    memo: TargetMemo | None = None,
) -> dict[str, float]:
    """Each direction's measures (each ordered domain pair's for a multi-domain task) on ``n`` test images;
    ``memo`` keeps the target images' features for the next evaluation with the same feature nets."""
    if dm.info.domains:  # a multi-domain task (StarGAN's): every ordered pair of domains
        return domain_pair_metrics(model, dm, n, classifiers or {}, memo)
    a, b, labels = dm.test_pairs()
    n = min(n, len(a), len(b))
    a, b, labels = a[:n], b[:n], labels[:n]
    truth = bool(getattr(dm, "paired", False) or getattr(dm, "true_test_pairs", False))
    classifiers = classifiers or {}
    out: dict[str, float] = {}
    cycle = truth and set(model.directions) == {"ab", "ba"}  # both ways and the true pairs: the hidden-code check
    for direction in model.directions:
        src, tgt, target_domain = (a, b, "b") if direction == "ab" else (b, a, "a")
        pred = model.translate(to_model_space(src), direction).float().cpu()
        pred01 = pred.add(1).div(2).clamp(0, 1)
        scores = score_translation(
            pred01, tgt.float() / 255, labels, truth, classifiers.get(target_domain), inception, (memo, target_domain)
        )
        out.update({f"{direction}/{k}": v for k, v in scores.items()})
        if cycle:
            out[f"{direction}/round_trip_l1"] = round_trip_l1(model, pred, src, direction[::-1])
    if cycle:
        for direction in model.directions:
            out[f"{direction}/hidden_code_ratio"] = hidden_code_ratio(out, direction, direction[::-1])
    return out


def round_trip_l1(model: Any, translation: Tensor, src: Tensor, back: str) -> float:
    """L1 in [0, 1] of the translation (model space) mapped back by ``back`` to the source images (uint8)."""
    back01 = model.translate(translation.clamp(-1, 1), back).float().cpu().add(1).div(2).clamp(0, 1)
    return float((back01 - src.float() / 255).abs().mean())


def hidden_code_ratio(out: dict[str, float], direction: str, back: str) -> float:
    """The check for hidden codes (Chu et al. 2017) of ``direction``: the L1 of the way back from the *true*
    target images (``back``'s l1) over the L1 of the round trip through G's own translation. Near 1 when both
    directions are right; far above 1 when the round trip carries what the true target images lack: a code
    hidden in the translations, or errors of the two directions that cancel (a large ratio with a poor way back
    from the true images, as StarGAN's image<->blurred, is the hidden code)."""
    return out[f"{back}/l1"] / max(out[f"{direction}/round_trip_l1"], 1e-6)


@torch.no_grad()
def domain_pair_metrics(
    model: Any, dm: Any, n: int, classifiers: dict[str, Any], memo: TargetMemo | None = None
) -> dict[str, float]:
    """Multi-domain data (every test image in each domain, ``dm.test_domains()``): the measures of
    each ordered pair under '<source>_to_<target>/...' (the target domain's classifier), and their
    means over the pairs under 'mean/...'. Per pair i -> j also ``round_trip_l1``, the L1 of G(G(x_i, j), i)
    to x_i (the cycle G is trained on), and ``hidden_code_ratio``, pair j -> i's l1 over it."""
    from gan_lightning.data.domains import domain_pairs

    views, labels = dm.test_domains()
    n = min(n, len(labels))
    names = list(dm.info.domains)
    out: dict[str, float] = {}
    memo = {} if memo is None else memo  # each target domain's features once, not once per pair
    for i, j, name in domain_pairs(names):
        pred = model.translate(to_model_space(views[i, :n]), name).float().cpu()
        pred01 = pred.add(1).div(2).clamp(0, 1)
        tgt01 = views[j, :n].float() / 255
        scores = score_translation(pred01, tgt01, labels[:n], True, classifiers.get(names[j]), None, (memo, names[j]))
        out.update({f"{name}/{k}": v for k, v in scores.items()})
        out[f"{name}/round_trip_l1"] = round_trip_l1(model, pred, views[i, :n], f"{names[j]}_to_{names[i]}")
    for i, j, name in domain_pairs(names):
        out[f"{name}/hidden_code_ratio"] = hidden_code_ratio(out, name, f"{names[j]}_to_{names[i]}")
    per_pair: dict[str, list[float]] = {}
    for key, value in out.items():
        per_pair.setdefault(key.split("/", 1)[1], []).append(value)
    out.update({f"mean/{k}": sum(v) / len(v) for k, v in per_pair.items()})
    return out


@torch.no_grad()
def baseline_metrics(
    dm: Any,
    n: int = 10000,
    classifiers: dict[str, Any] | None = None,
    inception: Any = None,
    memo: TargetMemo | None = None,
) -> dict[str, float]:
    """The A -> B metrics of the data module's model-free ``baseline`` translation (bicubic
    upsampling for super-resolution) under '<baseline>/...', on the same test pairs; {} without one."""
    if not getattr(dm, "baseline", ""):
        return {}
    a, b, labels = dm.test_pairs()
    n = min(n, len(a), len(b))
    pred01 = dm.baseline_translation(a[:n]).float().cpu()
    clf = (classifiers or {}).get("b")
    scores = score_translation(pred01, b[:n].float() / 255, labels[:n], True, clf, inception, (memo, "b"))
    return {f"{dm.baseline}/{k}": v for k, v in scores.items()}


def score_translation(
    pred01: Tensor,
    tgt01: Tensor,
    labels: Tensor,
    truth: bool,
    clf: Any = None,
    inception: Any = None,
    target: tuple[TargetMemo | None, str] = (None, ""),
) -> dict[str, float]:
    """Translations ``pred01`` against the targets ``tgt01`` (both [0, 1]): l1/ssim/psnr where
    ``tgt01`` is the true translation, FID (and label agreement) in ``clf``'s feature space, else
    in ``inception``'s. ``target`` = (a memo, the targets' name): their features are taken from the memo
    or put there."""
    out: dict[str, float] = {}
    if truth:
        out["l1"] = float((pred01 - tgt01).abs().mean())
        out["ssim"] = ssim(pred01, tgt01)  # Wang et al. 2004: 11x11 Gaussian window
        out["psnr"] = psnr(pred01, tgt01)  # mean of per-image PSNRs, [0, 1] range
    if clf is not None:
        device = next(clf.parameters()).device
        feats_pred, probs = clf(pred01.to(device))
        feats_real, probs_real = target_features(target, clf, tgt01, lambda x: clf(x.to(device)))
        out["fid"] = fid_from_features(feats_pred.cpu(), feats_real.cpu())
        if bool((labels >= 0).all()) and probs_real is not None:  # a classifier gives class probabilities
            agreement = float((probs.argmax(1).cpu() == labels).double().mean())
            # the ceiling: the same classifier on the true targets of the test pairs (its accuracy
            # there), what a perfect translation would score; the share is agreement / ceiling
            ceiling = float((probs_real.argmax(1).cpu() == labels).double().mean())
            out["agreement"] = agreement
            out["agreement_ceiling"] = ceiling
            out["agreement_share"] = agreement / ceiling if ceiling > 0 else float("nan")
    elif inception is not None:
        device = next(inception.parameters()).device

        def embed(x: Tensor) -> tuple[Tensor, None]:
            return torch.cat([inception(x[i : i + 100].to(device))[0].cpu() for i in range(0, len(x), 100)]), None

        out["fid"] = fid_from_features(embed(pred01)[0], target_features(target, inception, tgt01, embed)[0])
    return out


def target_features(
    target: tuple[TargetMemo | None, str], net: Any, tgt01: Tensor, embed: Any
) -> tuple[Tensor, Tensor | None]:
    """``embed(tgt01)`` = (features, class probabilities or None), from ``target``'s memo when it has them for
    this net, these targets and their number, else computed (on the CPU) and put there."""
    memo, name = target
    key = (id(net), name, len(tgt01))
    if memo is not None and key in memo:
        return memo[key]
    feats, probs = embed(tgt01)
    value = (feats.cpu(), None if probs is None else probs.cpu())
    if memo is not None:
        memo[key] = value
    return value
