"""The metric of metrics: how each measure responds to known degradations of real data.

As Borji (2019) and Xu et al. (2018) do, held-out real images stand in for an ideal generator
(the ``real`` row) and each degradation stands in for a known failure:
  drop_classes  mode dropping: only half of the classes
  collapse      mode collapse: each class reduced to two images, repeated
  noise         Gaussian pixel noise (std 0.15 on the [0, 1] scale)
  blur          Gaussian blur (std 1 pixel)
  memorised     training images themselves (the reference set): memorisation
Rows are made from one half of the test split (CAS, which trains a classifier on a row, is scored
on the other half). Every measure is computed for every row against the same reference (the training split), and a
cell says whether the measure's primary value moved from the ``real`` row in its worse
direction. ``gan-lightning measures`` writes the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lightning.data.base import to_model_space
from gan_lightning.files import write_json
from gan_lightning.metrics.evaluator import METRICS, Evaluator, full_key
from gan_lightning.metrics.image_measures import _filter_valid, gaussian_window
from gan_lightning.registry import ConfigError

# measures that need something a set of images does not have
NOT_APPLICABLE = {"recon": "needs a generator to invert", "cond": "needs a conditional model"}
DEGRADATIONS = ("drop_classes", "collapse", "noise", "blur", "memorised")


def _blur(images01: Tensor, sigma: float = 1.0) -> Tensor:
    """Gaussian blur of (N, C, H, W) images, borders replicated: SSIM's separable window filter."""
    radius = int(3 * sigma)
    n, c, h, w = images01.shape
    padded = F.pad(images01.reshape(n * c, 1, h, w), (radius,) * 4, mode="replicate").squeeze(1)
    return _filter_valid(padded, gaussian_window(2 * radius + 1, sigma).float()).reshape(n, c, h, w)


def degraded_sets(
    test: tuple[Tensor, Tensor], train: tuple[Tensor, Tensor], n: int, seed: int = 0
) -> dict[str, tuple[Tensor, Tensor]]:
    """{row: ([0, 1] float images (n, C, H, W), their labels)}: ``real`` (n test images) and each
    degradation, all seeded."""
    g = torch.Generator().manual_seed(seed)
    images, labels = test
    if len(images) < n:
        raise ConfigError(f"the test split has {len(images)} images, fewer than n={n}: lower n")
    idx = torch.randperm(len(images), generator=g)[:n]
    real, real_y = images[idx].float() / 255, labels[idx]
    classes = labels.unique()
    kept = classes[: max(1, len(classes) // 2)]
    pool = torch.nonzero(torch.isin(labels, kept)).flatten()
    drop = pool[torch.randint(len(pool), (n,), generator=g)]
    protos = torch.cat([torch.nonzero(labels == c).flatten()[:2] for c in classes])  # two images per class
    collapse = protos[torch.randint(len(protos), (n,), generator=g)]
    noise = (real + 0.15 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    return {
        "real": (real, real_y),
        "drop_classes": (images[drop].float() / 255, labels[drop]),
        "collapse": (images[collapse].float() / 255, labels[collapse]),
        "noise": (noise, real_y),
        "blur": (_blur(real).clamp(0, 1), real_y),
        "memorised": (train[0][:n].float() / 255, train[1][:n]),
    }


def measure_table(
    evaluator: Evaluator, sets: dict[str, tuple[Tensor, Tensor]], echo: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every measure of ``evaluator`` on every set; per row its values and seconds, and for each
    degradation and each measure's primary key whether it moved the worse way from ``real``."""
    rows: dict[str, dict[str, float]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for row, (images01, labels) in sets.items():
        data = evaluator.extract(to_model_space(images01.mul(255)))
        data["requested"] = labels.long()
        rows[row], seconds[row] = {}, {}
        for name, spec in evaluator.specs.items():
            t0 = time.perf_counter()
            for key, value in spec.fn(evaluator, data).items():
                rows[row][full_key(name, key)] = float(value)
            seconds[row][name] = round(time.perf_counter() - t0, 3)
        if echo:
            echo(f"[measures] {row}: {len(rows[row])} values")
    directions = evaluator.directions
    primaries = {name: full_key(name, spec.primary) for name, spec in evaluator.specs.items()}
    moved: dict[str, dict[str, bool | None]] = {}
    for row in rows:
        if row == "real":
            continue
        moved[row] = {}
        for name, key in primaries.items():
            higher_better = directions.get(key)
            a, b = rows["real"].get(key), rows[row].get(key)
            if higher_better is None or a is None or b is None or a != a or b != b:
                moved[row][name] = None
            else:
                moved[row][name] = bool(b < a) if higher_better else bool(b > a)
    return {"rows": rows, "seconds": seconds, "primary": primaries, "worse": moved}


def table_markdown(result: dict[str, Any]) -> str:
    """Measures as rows, degradations as columns: primary value and whether it moved the worse way."""
    primaries, rows, worse = result["primary"], result["rows"], result["worse"]
    cols = ["real", *[d for d in DEGRADATIONS if d in rows]]
    lines = [
        "| measure (primary key) | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, key in primaries.items():
        cells = []
        for col in cols:
            value = rows[col].get(key, float("nan"))
            mark = "" if col == "real" else {True: " ✓", False: " ✗", None: " ?"}[worse[col][name]]
            cells.append(f"{value:.4g}{mark}")
        lines.append(f"| {name} (`{key}`) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("✓: moved the worse way from the `real` row (the degradation is detected); ✗: not; ?: no direction.")
    return "\n".join(lines)


def run_measures(
    cfg: Any, names: list[str], n: int, features: str, out: Path, seed: int = 0, verbose: bool = True
) -> dict[str, Any]:
    """``gan-lightning measures``: the table for a dataset's test split against its training split."""
    from gan_lightning.data import build_datamodule

    for name in names:
        if name in NOT_APPLICABLE:
            raise ConfigError(f"metric '{name}' cannot be measured on image sets: it {NOT_APPLICABLE[name]}")
    dm = build_datamodule(cfg)
    if hasattr(dm, "prepare"):
        dm.prepare()
    if dm.info.kind != "image" or not hasattr(dm, "split"):
        raise ConfigError(f"'measures' needs an image dataset with splits, not '{dm.info.name}'")
    m = cfg.metrics
    evaluator = Evaluator(
        names,
        dm.info,
        dm,
        features=features,
        n_ref=n,
        ref_split="train",
        prdc_n=n,
        ndb_bins=int(m.ndb_bins),
        resize=str(m.resize),
        is_weights=str(m.is_weights) or None,
        verbose=verbose,
    ).prepare()
    train = dm.split(train=True)
    from gan_lightning.metrics.reference import choose

    ref_idx = choose(len(train[0]), n)  # the reference's own images: 'memorised' copies them
    # one half of the test split makes the rows, the other is CAS's real test set (CAS trains on a row)
    test_images, test_labels = dm.split(train=False)
    rows_idx, held_idx = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(seed)).chunk(2)
    test28 = dm.split(train=False, size=28)
    evaluator.cas_test = (test28[0][held_idx], test28[1][held_idx])
    rows_test = (test_images[rows_idx], test_labels[rows_idx])
    sets = degraded_sets(rows_test, (train[0][ref_idx], train[1][ref_idx]), n, seed)
    t0 = time.perf_counter()
    result = measure_table(evaluator, sets, echo=print if verbose else None)
    result.update(
        {
            "dataset": dm.info.name,
            "n": n,
            "seed": seed,
            "features": features,
            "reference": "training split",
            "wall_s": round(time.perf_counter() - t0, 1),
            **{k: v for k, v in evaluator.describe().items() if k != "metrics"},
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "measures.json", result)
    (out / "measures.md").write_text(table_markdown(result) + "\n")
    return result


def all_set_measures() -> list[str]:
    """Every registered image measure that a set of images can be given to."""
    return [
        name
        for name in METRICS.names()
        if "image" in METRICS.get(name, "metrics").kinds and name not in NOT_APPLICABLE and name != "stacked"
    ]
