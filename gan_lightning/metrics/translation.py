"""Image-to-image metrics on the test split, in each direction a model translates:
L1, SSIM and PSNR against the true translation (where the task has one), FID of the translations against real
target-domain images, and label agreement: the target domain's classifier labels the
translation as the class of the input (fashion_edges has labels; folders do not), beside its
ceiling (the classifier's agreement on the true targets) and the share of the ceiling reached."""

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
}


class EdgeView:
    """The A domain (edge maps) of fashion_edges, shaped like a DataModule for get_classifier."""

    domain_classifier = True

    def __init__(self, dm: Any):
        self.dm, self.dcfg = dm, dm.dcfg
        self.info = type("Info", (), {"name": "fashion_edges_A"})()

    def split(self, train: bool, size: int | None = None) -> tuple[Tensor, Tensor]:
        return self.dm.edge_split(train, size)


def domain_classifiers(dm: Any, verbose: bool = False) -> dict[str, Any]:
    """{'a': classifier of domain A, 'b': of domain B} where the data has labels."""
    from gan_lightning.metrics.classifier import get_classifier

    if not hasattr(dm, "edge_split"):
        return {}
    return {"b": get_classifier(dm.fashion, verbose=verbose), "a": get_classifier(EdgeView(dm), verbose=verbose)}


@torch.no_grad()
def translation_metrics(
    model: Any, dm: Any, n: int = 10000, classifiers: dict[str, Any] | None = None, inception: Any = None
) -> dict[str, float]:
    a, b, labels = dm.test_pairs()
    n = min(n, len(a), len(b))
    a, b, labels = a[:n], b[:n], labels[:n]
    truth = getattr(dm, "paired", False) or hasattr(dm, "edge_split")
    classifiers = classifiers or {}
    out: dict[str, float] = {}
    for direction in model.directions:
        src, tgt, target_domain = (a, b, "b") if direction == "ab" else (b, a, "a")
        pred01 = model.translate(to_model_space(src), direction).float().cpu().add(1).div(2).clamp(0, 1)
        tgt01 = tgt.float() / 255
        if truth:
            out[f"{direction}/l1"] = float((pred01 - tgt01).abs().mean())
            out[f"{direction}/ssim"] = ssim(pred01, tgt01)  # Wang et al. 2004: 11x11 Gaussian window
            out[f"{direction}/psnr"] = psnr(pred01, tgt01)  # mean of per-image PSNRs, [0, 1] range
        clf = classifiers.get(target_domain)
        if clf is not None:
            device = next(clf.parameters()).device
            feats_pred, probs = clf(pred01.to(device))
            feats_real, probs_real = clf(tgt01.to(device))
            out[f"{direction}/fid"] = fid_from_features(feats_pred.cpu(), feats_real.cpu())
            if bool((labels >= 0).all()):
                agreement = float((probs.argmax(1).cpu() == labels).double().mean())
                # the ceiling: the same classifier on the true targets of the test pairs (its accuracy
                # there), what a perfect translation would score; the share is agreement / ceiling
                ceiling = float((probs_real.argmax(1).cpu() == labels).double().mean())
                out[f"{direction}/agreement"] = agreement
                out[f"{direction}/agreement_ceiling"] = ceiling
                out[f"{direction}/agreement_share"] = agreement / ceiling if ceiling > 0 else float("nan")
        elif inception is not None:
            feats = [
                torch.cat([inception(x[i : i + 100])[0].cpu() for i in range(0, len(x), 100)]) for x in (pred01, tgt01)
            ]
            out[f"{direction}/fid"] = fid_from_features(*feats)
    return out
