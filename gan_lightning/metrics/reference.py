"""Reference statistics of a dataset split, computed once and cached.

The cache key names the dataset, split, feature extractor (with its resize mode or its own
training-data fingerprint), the number of images and a fingerprint of the split's bytes, so a
changed dataset or extractor never reuses stale statistics. Stored: mean and covariance of all
``n`` features (float64), up to ``max_feats`` of the features themselves (for KID and PR), and
the split's class histogram.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gan_lightning.files import sibling_tmp
from gan_lightning.metrics.classifier import cache_dir, fingerprint
from gan_lightning.metrics.frechet import StreamingStats
from gan_lightning.progress import progress

REFERENCE_FORMAT = 3  # 3: the kept features are a random share (kept_rows), no longer a prefix
MAX_FEATS = 10000  # features kept for KID, PRDC, MMD, 1-NN...; the mean and covariance use all n


@dataclass
class Reference:
    key: str
    mu: Tensor  # float64 (D,)
    sigma: Tensor  # float64 (D, D)
    n: int
    feats: Tensor  # float32 (min(n, max_feats), D)
    class_hist: Tensor | None  # float64 (C,) counts of the split's labels
    labels: Tensor | None = None  # labels of the rows of ``feats``


def reference_key(dataset: str, split: str, extractor_key: str, n: int, data_fp: str) -> str:
    return f"{dataset}-{split}-{extractor_key}-n{n}-{data_fp}"


def reference_path(key: str) -> Path:
    return cache_dir() / "reference" / f"{key}.pt"


def choose(n_total: int, n: int, seed: int = 0) -> Tensor:
    """Indices of the n images of a split used as the reference (all of them if n >= size)."""
    if n >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


def kept_rows(n: int, max_feats: int = MAX_FEATS) -> Tensor:
    """Which of a reference's ``n`` images keep their features: a seeded random ``max_feats`` of them, in
    order (a prefix of a split stored class by class would hold only its first classes); all if n <= max_feats."""
    if n <= max_feats:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(1))[:max_feats].sort().values


def compute_reference(
    images_u8: Tensor,
    labels: Tensor | None,
    extract: Callable[[Tensor], Tensor],
    key: str,
    batch_size: int = 250,
    max_feats: int = MAX_FEATS,
    verbose: bool = False,
) -> Reference:
    """Stream a split's uint8 images through ``extract`` ([0, 1] -> features)."""
    stats = StreamingStats()
    kept: list[Tensor] = []
    keep = torch.zeros(len(images_u8), dtype=torch.bool)
    keep[kept_rows(len(images_u8), max_feats)] = True
    with progress(total=len(images_u8), desc="reference statistics", unit="img", verbose=verbose) as bar:
        for i in range(0, len(images_u8), batch_size):
            feats = extract(images_u8[i : i + batch_size].float() / 255.0).double().cpu()
            stats.update(feats)
            kept.append(feats[keep[i : i + batch_size]].float())
            bar.update(len(feats))
            if verbose and bar.disable and (i // batch_size) % 20 == 0:  # no bar (a log file): a line per 20 batches
                print(f"[reference] {key}: {i + len(feats)}/{len(images_u8)} images", file=sys.stderr)
    hist = None if labels is None else torch.bincount(labels.long()).double()
    feats = torch.cat(kept)
    kept_labels = None if labels is None else labels[keep].long()
    return Reference(key, stats.mean, stats.cov, stats.n, feats, hist, kept_labels)


def cached_reference(
    dataset: str,
    split: str,
    images_u8: Tensor,
    labels: Tensor | None,
    extractor_key: str,
    extract: Callable[[Tensor], Tensor],
    n: int,
    use_cache: bool = True,
    verbose: bool = False,
) -> Reference:
    """The reference of ``n`` images of a split: from the cache, or computed and cached."""
    if labels is not None and bool((labels < 0).any()):  # unlabelled data (-1)
        labels = None
    idx = choose(len(images_u8), n)
    images_u8 = images_u8[idx]
    labels = labels[idx] if labels is not None else None
    key = reference_key(
        dataset,
        split,
        extractor_key,
        len(idx),
        fingerprint(images_u8, labels if labels is not None else torch.zeros(1)),
    )
    path = reference_path(key)
    if use_cache and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("format") == REFERENCE_FORMAT:
                return Reference(**{k: v for k, v in blob.items() if k != "format"})
        except Exception:
            pass  # an unreadable cache entry is recomputed
    if verbose:
        print(f"[reference] computing {key} (cached afterwards)", file=sys.stderr)
    ref = compute_reference(images_u8, labels, extract, key, verbose=verbose)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = sibling_tmp(path)
        torch.save({"format": REFERENCE_FORMAT, **ref.__dict__}, tmp)
        tmp.replace(path)
    return ref
