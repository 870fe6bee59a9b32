"""Learned latent directions: InterFaceGAN (Shen, Gu, Tang and Zhou 2020, "Interpreting the latent
space of GANs for semantic face editing").

For a binary attribute that a classifier reads off G(z), a hyperplane in z space separates the
samples that have it from those that do not; its unit normal n points towards the attribute, and
z' = z + s n adds it (s > 0) or removes it (s < 0). Conditional manipulation moves along n1 with
its component along another attribute's normal n2 removed, n1 - (n1.n2) n2, renormalised: to the
extent that both boundaries are hyperplanes, the step leaves the other attribute's side unchanged.

Here an attribute is one class of a classifier of [0, 1] images against the rest (by default the
domain classifier the metrics use, for MNIST and Fashion-MNIST): a sample has it when the class's
probability exceeds 1/2. The boundary is an L2-regularised logistic regression with balanced class
weights, fitted by L-BFGS in float64 (the paper fits a linear SVM; any linear classifier gives a
normal). Everything below works on a function z -> probabilities (``Classify``), so a notebook can
use other classifiers, or a synthetic one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_lightning.files import save_npy
from gan_lightning.metrics.logistic import fit_logistic
from gan_lightning.registry import ConfigError

Classify = Callable[[Tensor], Tensor]
"""z (N, z_dim) -> attribute probabilities (N, K), float64 on the CPU."""

MIN_PER_SIDE = 10  # samples needed on each side of a boundary to fit it
STEP_FRACTIONS = (-1.0, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.0)  # of --step: the measured steps
FIT_FRACTION = 0.8  # of the samples: the boundaries are fitted on these, the edits measured on the rest


# ----------------------------------------------------------------------------- classifying G(z)


def check_step(step: float) -> None:
    """``--step``: a finite length > 0 along the unit normal (NaN would pass a plain ``step <= 0``)."""
    if not (math.isfinite(step) and step > 0):
        raise ConfigError(f"bad value for '--step': a finite length > 0, got {step}")


def latent_classifier(model: Any, probs: Callable[[Tensor], Tensor], batch_size: int = 500) -> Classify:
    """z -> ``probs`` of the model's sampling generator's images G(z), in [0, 1] (eval mode, batches)."""

    @torch.no_grad()
    def classify(z: Tensor) -> Tensor:
        out = [
            probs(model.generate_from(z[i : i + batch_size].float()).float().add(1).div(2).clamp(0, 1)).double().cpu()
            for i in range(0, len(z), batch_size)
        ]
        return torch.cat(out)

    return classify


def domain_classifier(model: Any, device: str = "cpu", data_dir: str | None = None) -> Callable[[Tensor], Tensor]:
    """[0, 1] images -> class probabilities of the domain classifier of the model's data (the one
    the metrics use; trained once and cached when missing)."""
    from gan_lightning.evaluate import datamodule_for
    from gan_lightning.metrics.classifier import get_classifier

    ex = get_classifier(datamodule_for(copy.deepcopy(model.cfg), data_dir), device=device).to(device)

    def probs(images01: Tensor) -> Tensor:
        return ex(images01.to(device))[1]

    return probs


# ----------------------------------------------------------------------------- boundaries
@dataclass
class Boundary:
    """A hyperplane in z space: signed distance ``z . normal + offset`` (positive: has the attribute)."""

    normal: Tensor  # (z_dim,) float64, unit length
    offset: float
    accuracy: float  # balanced accuracy on the samples it was fitted to
    positives: int
    total: int

    def distance(self, z: Tensor) -> Tensor:
        return z.double() @ self.normal + self.offset


def balanced_accuracy(predicted: Tensor, positive: Tensor) -> float:
    """The mean of the true-positive and true-negative rates."""
    p, y = predicted.bool(), positive.bool()
    return 0.5 * (float(p[y].double().mean()) + float((~p[~y]).double().mean()))


def fit_boundary(z: Tensor, positive: Tensor, l2: float = 1e-3, max_iter: int = 500) -> Boundary:
    """The hyperplane separating the rows of ``z`` with ``positive`` from the others: logistic regression,
    each side weighted to half the loss (so a rare class is not ignored), plus ``l2``/2 |w|^2; L-BFGS in
    float64 (deterministic). The unit normal is w / |w|."""
    x, y = z.detach().double().cpu(), positive.detach().bool().cpu().flatten()
    n_pos, n = int(y.sum()), len(y)
    if x.ndim != 2 or len(x) != n:
        raise ValueError(f"need z (N, D) and N labels, got {tuple(x.shape)} and {n}")
    if min(n_pos, n - n_pos) == 0:
        raise ValueError(f"both sides need samples: {n_pos} of {n} are positive")
    weight = torch.where(y, 0.5 / n_pos, 0.5 / (n - n_pos)).double()
    # two-class softmax regression: its logit difference v = w_1 - w_0 is the binary model's w, and
    # at the optimum w_0 = -w_1, so a penalty of 2 l2 on both columns is l2/2 |v|^2 (the same fit)
    w2, b2 = fit_logistic(x, y.long(), 2.0 * l2, sample_weight=weight, max_iter=max_iter)
    w_, b_ = w2[:, 1] - w2[:, 0], float(b2[1] - b2[0])
    norm = float(w_.norm())
    if not math.isfinite(norm) or norm == 0:
        raise ValueError("the boundary did not fit (a zero or non-finite normal)")
    return Boundary(w_ / norm, b_ / norm, balanced_accuracy(x @ w_ + b_ > 0, y), n_pos, n)


def project_out(normal: Tensor, *others: Tensor) -> Tensor:
    """``normal`` without its components along ``others``, renormalised: InterFaceGAN's conditional
    manipulation, (n1 - (n1.n2) n2) / |n1 - (n1.n2) n2| for one unit n2; for several, the projection
    onto the orthogonal complement of their span. float64."""
    n = normal.detach().double().cpu().flatten()
    if others:
        basis, _ = torch.linalg.qr(torch.stack([o.detach().double().cpu().flatten() for o in others], dim=1))
        n = n - basis @ (basis.T @ n)
    norm = float(n.norm())
    if norm < 1e-8:
        raise ValueError("the direction lies in the span of the others: nothing is left after projecting them out")
    return n / norm


def edit(z: Tensor, normal: Tensor, steps: Sequence[float]) -> Tensor:
    """(len(steps), N, z_dim): z + s * normal for each step s."""
    n = normal.to(z)
    return torch.stack([z + float(s) * n for s in steps])


# ----------------------------------------------------------------------------- measuring edits
@torch.no_grad()
def measure_edits(
    classify: Classify, z: Tensor, normal: Tensor, target: int, steps: Sequence[float], other: int | None = None
) -> list[dict[str, float]]:
    """Per step s, what z + s n does to the samples z (a sample has attribute c when p_c > 1/2):

    - ``intended``: for s > 0 the share of the samples without ``target`` that have it after the step;
      for s < 0 the share of those with it that lose it (``eligible`` counts them; nan when none);
    - ``changed``: the share of all samples whose ``target`` attribute changed; ``p_target``: its mean
      probability after the step;
    - with ``other``: ``other_change`` and ``other_abs_change``, the mean signed and absolute change of
      p_other, and ``other_flipped``, the share whose ``other`` attribute changed."""
    p0 = classify(z)
    had = p0[:, target] > 0.5
    rows = []
    for s, zs in zip(steps, edit(z, normal, steps)):
        p = classify(zs)
        has = p[:, target] > 0.5
        eligible = ~had if s > 0 else had if s < 0 else torch.zeros_like(had)
        intended = has if s > 0 else ~has
        count = int(eligible.sum())
        row = {
            "step": float(s),
            "intended": float((intended & eligible).sum()) / count if count else math.nan,
            "eligible": count,
            "changed": float((has != had).double().mean()),
            "p_target": float(p[:, target].mean()),
        }
        if other is not None:
            dp = p[:, other] - p0[:, other]
            row |= {
                "other_change": float(dp.mean()),
                "other_abs_change": float(dp.abs().mean()),
                "other_flipped": float(((p[:, other] > 0.5) != (p0[:, other] > 0.5)).double().mean()),
            }
        rows.append(row)
    return rows


@dataclass
class Direction:
    """A learned direction: the attribute (class) it adds, and the attribute projected out, if any."""

    target: int
    normal: Tensor
    conditioned_on: int | None = None


def learn_directions(
    classify: Classify,
    z: Tensor,
    classes: Sequence[int],
    steps: Sequence[float],
    fit_fraction: float = FIT_FRACTION,
    l2: float = 1e-3,
    names: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit one boundary per class in ``classes`` (one or two) on the first ``fit_fraction`` of ``z``;
    measure on the rest each class's direction and, for two classes, each conditioned on the other
    (the other's normal projected out). Returns {"boundaries": [...], "directions": [Direction],
    "report": JSON-ready rows}. ConfigError when a class has too few samples on either side."""
    if not 1 <= len(classes) <= 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"give one or two different classes, got {list(classes)}")
    probs = classify(z)
    k = probs.shape[1]
    for c in classes:
        if not 0 <= c < k:
            raise ConfigError(f"class {c} is not one of the classifier's {k} classes (0..{k - 1})")
    n_fit = round(len(z) * fit_fraction)
    fit, held = slice(0, n_fit), slice(n_fit, len(z))

    def label(c: int | None) -> str:
        return "" if c is None else names[c] if c < len(names) else str(c)

    boundaries = {}
    for c in classes:
        has = probs[fit, c] > 0.5
        if min(int(has.sum()), int((~has).sum())) < MIN_PER_SIDE:
            shares = torch.bincount(probs.argmax(1), minlength=k).double() / len(probs)
            common = ", ".join(f"{label(int(i))} {float(shares[i]):.0%}" for i in shares.argsort(descending=True)[:5])
            raise ConfigError(
                f"class '{label(c)}': {int(has.sum())} of {n_fit} samples have it (p > 0.5); a boundary needs "
                f"{MIN_PER_SIDE} on each side: raise --n or pick classes the generator makes (most common: {common})"
            )
        boundaries[c] = fit_boundary(z[fit], has, l2)
    directions = [Direction(c, boundaries[c].normal) for c in classes]
    if len(classes) == 2:
        a, b = classes
        directions += [
            Direction(a, project_out(boundaries[a].normal, boundaries[b].normal), b),
            Direction(b, project_out(boundaries[b].normal, boundaries[a].normal), a),
        ]
    z_held = z[held]
    report = []
    for d in directions:
        other = next((c for c in classes if c != d.target), None)
        b_ = boundaries[d.target]
        held_acc = balanced_accuracy(b_.distance(z_held) > 0, probs[held, d.target] > 0.5)
        report.append(
            {
                "attribute": label(d.target),
                "class": d.target,
                "conditioned_on": None if d.conditioned_on is None else label(d.conditioned_on),
                "other": label(other) if other is not None else None,
                "boundary": {
                    "fit_accuracy": b_.accuracy,
                    "held_out_accuracy": held_acc,
                    "positives": b_.positives,
                    "fitted_on": b_.total,
                },
                "cos_with_other_normal": None
                if other is None
                else float(d.normal.double() @ boundaries[other].normal.double()),
                "steps": measure_edits(classify, z_held, d.normal, d.target, steps, other),
            }
        )
    return {"boundaries": boundaries, "directions": directions, "report": report}


# ----------------------------------------------------------------------------- gan-lightning directions
def parse_classes(spec: str, names: Sequence[str], num_classes: int) -> list[int]:
    """``--classes a,b``: class indices or names (case-insensitive)."""
    lowered = [n.lower() for n in names]
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part.isdigit() and int(part) < num_classes:
            out.append(int(part))
        elif part.lower() in lowered:
            out.append(lowered.index(part.lower()))
        else:
            known = ", ".join(names) if names else f"0..{num_classes - 1}"
            raise ConfigError(f"bad value for '--classes': unknown class '{part}'; use {known}")
    return out


def most_made(probs: Tensor, k: int = 2) -> list[int]:
    """The ``k`` classes most often most probable: the default classes of ``directions``."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1])
    return [int(i) for i in counts.argsort(descending=True, stable=True)[:k]]


def check_model(model: Any) -> None:
    """ConfigError unless the model is an image generator of z alone (class directions of a G(z, y)
    would compete with y)."""
    name = model.cfg.model.name
    if model.info.kind != "image":
        raise ConfigError(f"model '{name}' makes {model.info.kind} data: directions need an image generator")
    if model.labels_for(1) is not None:
        raise ConfigError(
            f"model '{name}' generates from z and a code or class (G(z, y)): class directions are learned for "
            "generators of z alone; use an unconditional checkpoint"
        )


def edit_grid(
    model: Any, z: Tensor, normal: Tensor, step: float, path: Path, columns: int = 7, net: Any = None
) -> Path:
    """A PNG: one row per z, columns z + s n for s from -step to step (the middle column is z)."""
    from gan_lightning.callbacks.samples import save_grid

    zs = edit(z, normal, np.linspace(-step, step, columns).tolist()).transpose(0, 1).reshape(-1, z.shape[1])
    images = model.generate_from(zs.float(), net).float().add(1).div(2).clamp(0, 1).cpu()
    save_grid(images, path, nrow=columns)
    return path


def directions_for_checkpoint(
    ckpt: str | Path,
    n: int = 4000,
    classes: str | None = None,
    step: float = 3.0,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    data_dir: str | None = None,
    probs: Callable[[Tensor], Tensor] | None = None,
    rows: int = 8,
) -> dict[str, Any]:
    """``gan-lightning directions``: sample ``n`` z's of a checkpoint's unconditional image generator,
    label G(z) with the domain classifier (or ``probs``), learn the directions of one or two classes
    and measure steps of ``STEP_FRACTIONS`` x ``step`` on the held-out fifth. Writes to ``out``
    (default ``<run>/directions-<classes>``): directions.json, normals.npy (one row per direction, in
    the JSON's order) and edits-*.png grids. Returns the JSON's content."""
    from gan_lightning.checkpoint import load_model
    from gan_lightning.cpu_memory import check_fits_in_memory
    from gan_lightning.files import write_json

    if n < 10 * MIN_PER_SIDE:
        raise ConfigError(f"bad value for '--n': need --n >= {10 * MIN_PER_SIDE}, got {n}")
    check_step(step)
    model = load_model(ckpt, device)
    check_fits_in_memory(n, model)
    check_model(model)
    names = list(model.info.class_names)
    chosen = parse_classes(classes, names, int(model.info.num_classes)) if classes else None
    classify = latent_classifier(model, probs or domain_classifier(model, device, data_dir))
    z = model.draw_z(n, torch.Generator().manual_seed(seed)).float()
    chosen = chosen or most_made(classify(z[:500]))
    steps = [f * step for f in STEP_FRACTIONS]
    learned = learn_directions(classify, z, chosen, steps, names=names)
    tag = "-".join(names[c] if c < len(names) else str(c) for c in chosen).replace("/", "_").replace(" ", "_")
    folder = Path(out) if out else Path(ckpt).parent.parent / f"directions-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    held = z[round(len(z) * FIT_FRACTION) :]
    probs_held = classify(held)
    files = []
    for d, entry in zip(learned["directions"], learned["report"]):
        # rows: held-out samples without the attribute first (a step forward should add it)
        order = torch.argsort((probs_held[:, d.target] > 0.5).long(), stable=True)[:rows]
        fname = f"edits-{d.target}" + ("" if d.conditioned_on is None else f"-fix{d.conditioned_on}") + ".png"
        edit_grid(model, held[order], d.normal, step, folder / fname)
        entry["grid"] = fname
        files.append(fname)
    save_npy(folder / "normals.npy", torch.stack([d.normal for d in learned["directions"]]).numpy())
    report = {
        "checkpoint": str(ckpt),
        "g_step": model.g_step,
        "n": n,
        "fitted_on": round(n * FIT_FRACTION),
        "measured_on": len(held),
        "seed": seed,
        "step": step,
        "classes": [{"index": c, "name": names[c] if c < len(names) else str(c)} for c in chosen],
        "member": "a sample has a class when the classifier gives it probability > 0.5",
        "directions": learned["report"],
        "files": {"normals": "normals.npy", "grids": files},
    }
    write_json(folder / "directions.json", report)
    report["written_to"] = str(folder)
    return report
