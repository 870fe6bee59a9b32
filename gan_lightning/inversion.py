"""Latent inversion: the z whose G(z) is closest to a given image, found by gradient descent.

The reconstruction-error measure (Borji 2019's table; Xiang & Li 2017) and image editing both
start here. Each image's z is optimised on its own squared error, so the images of a batch do
not interact (G runs in eval mode); only z gets gradients, the generator's parameters and their
``.grad`` are left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gan_lightning.files import save_npy
from gan_lightning.metrics.image_measures import psnr_per_image
from gan_lightning.registry import ConfigError

START_STREAM = 0x1A7E27  # mixed with --seed into the random starts' seed


def invert(
    generate: Callable[[Tensor], Tensor],
    targets: Tensor,
    z_dim: int,
    steps: int = 200,
    lr: float = 0.05,
    restarts: int = 1,
    seed: int = 0,
    start: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(z, per-image mean squared error of G(z) against ``targets``), the best of ``restarts``
    seeded random starts (or ``start``, e.g. an encoder's output, as the first), each refined by
    ``steps`` Adam steps. ``generate`` maps (B, z_dim) to images shaped like ``targets``."""
    if restarts < 1 or steps < 0:
        raise ValueError(f"need restarts >= 1 and steps >= 0, got {restarts} and {steps}")
    # its own stream: seeded with ``seed`` itself, the starts would be the z `sample --seed` draws
    start_seed = np.random.SeedSequence([seed % 2**64, START_STREAM]).generate_state(1, np.uint64)[0]
    g = torch.Generator().manual_seed(int(start_seed))
    targets = targets.detach()
    best_z = best_err = None
    for r in range(restarts):
        z0 = start if (r == 0 and start is not None) else torch.randn(len(targets), z_dim, generator=g)
        z = z0.detach().clone().to(targets).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            with torch.enable_grad():
                err = (generate(z) - targets).pow(2).flatten(1).mean(1)
                (grad,) = torch.autograd.grad(err.sum(), z)  # per-image losses: independent z's
            opt.zero_grad(set_to_none=True)
            z.grad = grad
            opt.step()
        with torch.no_grad():
            err = (generate(z) - targets).pow(2).flatten(1).mean(1)
        z_final = z.detach()
        if best_err is None or best_z is None:
            best_z, best_err = z_final, err
        else:
            better = err < best_err
            best_z = torch.where(better[:, None], z_final, best_z)
            best_err = torch.where(better, err, best_err)
    assert best_z is not None and best_err is not None
    return best_z, best_err


# ----------------------------------------------------------------------------- a model's generator
@dataclass
class Inversion:
    """What ``invert_images`` found: the z's, G(z[, y]) in [0, 1] and the per-image errors on the
    [0, 1] scale (float64, CPU)."""

    z: Tensor  # (N, z_dim)
    reconstructions: Tensor  # (N, C, H, W) in [0, 1]
    mse: Tensor  # (N,) mean squared error per pixel
    l1: Tensor  # (N,) mean absolute error per pixel
    psnr: Tensor  # (N,) 10 log10(1 / mse) in dB (inf where the reconstruction is exact)
    start: str  # "encoder" (the model's encode(x) as the first start) or "random"
    labels: Tensor | None = None  # (N,) the classes of G(z, y), for class-conditional models

    def summary(self) -> dict[str, Any]:
        """Means (and medians) over the images; a mean PSNR is inf as soon as one image is exact."""
        finite = self.psnr[torch.isfinite(self.psnr)]
        return {
            "n": len(self.mse),
            "mse_mean": float(self.mse.mean()),
            "mse_median": float(self.mse.median()),
            "rmse_mean": float(self.mse.sqrt().mean()),
            "l1_mean": float(self.l1.mean()),
            "psnr_mean": float(self.psnr.mean()),
            "psnr_median": float(self.psnr.median()),
            "psnr_exact_images": len(self.psnr) - len(finite),
            "z_norm_mean": float(self.z.double().norm(dim=1).mean()),
            "prior_norm": math.sqrt(self.z.shape[1]),  # ~ |z| of z ~ N(0, I): a much larger |z| is off the prior
            "start": self.start,
        }


def generator_labels(model: Any, labels: Tensor | None, n: int) -> Tensor | None:
    """The labels y of G(z, y) for ``n`` images: None for a generator of z alone (then ``labels``
    must be None); ``labels`` (one class for all, or one per image) for a class-conditional model.
    ConfigError for a missing or out-of-range label, and for generators of other codes (InfoGAN)."""
    name = model.cfg.model.name
    if model.labels_for(1) is None:
        if labels is not None:
            raise ConfigError(f"model '{name}' generates from z alone, G(z): drop the labels")
        return None
    if not getattr(model, "class_conditional", False):
        raise ConfigError(f"model '{name}': inversion finds z of G(z) or G(z, class); this generator takes other codes")
    if labels is None:
        raise ConfigError(
            f"model '{name}' is class-conditional, G(z, y): give the images' classes (--labels FILE.npy of one "
            "integer per image, or --labels K for one class), or invert a dataset split NAME:split whose labels "
            "are known"
        )
    y = labels.long().flatten()
    if len(y) == 1:
        y = y.expand(n)
    classes = int(model.info.num_classes)
    if len(y) != n:
        raise ConfigError(f"{len(y)} labels for {n} images: give one label per image, or one for all")
    if bool((y < 0).any()) or bool((y >= classes).any()):
        got = f"{int(y.min())}..{int(y.max())}"
        raise ConfigError(f"labels must lie in 0..{classes - 1} (the model's classes), got {got}")
    return y.to(model.device)


def need_images(model: Any) -> None:
    """ConfigError unless the model generates images."""
    if model.info.kind != "image":
        name, kind = model.cfg.model.name, model.info.kind
        raise ConfigError(f"model '{name}' makes {kind} data: inversion needs an image generator")


def check_images(model: Any, images01: Tensor, what: str = "the images") -> None:
    """ConfigError unless ``images01`` are (N, C, H, W) of the model's image shape."""
    need_images(model)
    shape = tuple(model.info.shape)
    if images01.ndim != 4 or tuple(images01.shape[1:]) != shape:
        got = tuple(images01.shape[1:]) if images01.ndim == 4 else tuple(images01.shape)
        fix = (
            f"give {shape[0]}-channel images"
            if images01.ndim == 4 and images01.shape[1] != shape[0]
            else f"resize them to {shape[1]}x{shape[2]}"
        )
        raise ConfigError(f"{what} are {got}, the model makes (C, H, W) = {shape}: {fix}")
    if len(images01) == 0:
        raise ConfigError(f"{what}: there are no images")


def invert_images(
    model: Any,
    images01: Tensor,
    labels: Tensor | None = None,
    steps: int = 500,
    lr: float = 0.05,
    restarts: int = 1,
    seed: int = 0,
    batch_size: int = 256,
    net: nn.Module | None = None,
) -> Inversion:
    """z for each of ``images01`` (N, C, H, W in [0, 1]) under a model's sampling generator (or
    ``net``), by ``invert``; a model with ``has_encoder`` starts from ``model.encode``. Class-conditional
    models need ``labels`` (see ``generator_labels``). Seeded: the same call gives the same z."""
    if steps < 0 or restarts < 1 or not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"need steps >= 0, restarts >= 1 and lr > 0, got {steps}, {restarts} and {lr}")
    check_images(model, images01)
    y = generator_labels(model, labels, len(images01))
    net = net or model.generator_for_sampling()
    modes = (model.training, net.training)
    model.eval()  # G (and an encoder) with BatchNorm's running statistics
    net.eval()
    zs, starts = [], "encoder" if model.has_encoder else "random"
    try:
        with model.frozen(net):  # gradients flow to z only
            for b, i in enumerate(range(0, len(images01), batch_size)):
                x = images01[i : i + batch_size].to(model.device).float() * 2 - 1  # model space
                yb = None if y is None else y[i : i + batch_size]
                start = None
                if model.has_encoder:
                    with torch.no_grad():
                        start = model.encode(x, yb).detach()

                def generate(z: Tensor, yb: Tensor | None = yb) -> Tensor:
                    return model.generate(z, net, yb)

                z, _ = invert(generate, x, model.z_dim, steps, lr, restarts, seed + b, start)
                zs.append(z)
        z = torch.cat(zs)
        recon = model.generate_from(z, net, y).float().add(1).div(2).clamp(0, 1).cpu()
    finally:
        model.train(modes[0])
        net.train(modes[1])
    target = images01.detach().double().cpu()
    diff = recon.double() - target
    return Inversion(
        z=z.cpu(),
        reconstructions=recon,
        mse=diff.pow(2).flatten(1).mean(1),
        l1=diff.abs().flatten(1).mean(1),
        psnr=psnr_per_image(recon, target),
        start=starts,
        labels=None if y is None else y.cpu(),
    )


# ----------------------------------------------------------------------------- gan-lightning invert
def model_images(model: Any, source: str, data_dir: str | None = None) -> tuple[Tensor, Tensor | None, str]:
    """([0, 1] float images, their labels or None, a short name) of an image source: a .npy in data
    space (N, C, H, W) such as ``gan-lightning sample`` writes (float in [0, 1] or uint8), an image
    folder, or a dataset split ``NAME:train|test[:n]`` (a seeded subset of n; made at the model's
    image size, with the model's own data settings when NAME is its dataset; with labels)."""
    from gan_lightning.evaluate import load_images, load_split

    parts = source.split(":")
    if len(parts) in (2, 3) and not Path(source).exists():
        n = None
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise ConfigError(f"'{source}': a dataset source is NAME:split or NAME:split:n with n >= 1")
            n = int(parts[2])
        name, split = parts[0], parts[1]
        if name == model.cfg.data.name:
            cfg = copy.deepcopy(model.cfg)
        else:
            from gan_lightning.config import load_config

            size = model.info.shape[-1] if model.info.kind == "image" else 28
            dir_args = [f"data.data_dir={data_dir}"] if data_dir else []
            cfg = load_config([f"data={name}", *dir_args, f"data.image_size={size}"], exp="quickstart")
        images, labels, _ = load_split(f"{name}:{split}", n, data_dir, cfg)
        return images.float() / 255, labels, f"{name}-{split}" + (f"-n{n}" if n else "")
    images, _ = load_images(source, None, as_uint8=False)
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return x, None, Path(source).stem or Path(source).name


def read_labels(spec: str | None) -> Tensor | None:
    """``--labels``: an integer (one class for every image) or a .npy of integers (N,)."""
    if spec is None:
        return None
    if spec.lstrip("-").isdigit():
        return torch.tensor([int(spec)])
    from gan_lightning.evaluate import load_npy

    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--labels {spec}: neither an integer nor an existing .npy file of integers")
    arr = load_npy(path)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ConfigError(f"{path}: labels are a 1-D array of integers (N,), got dtype {arr.dtype} shape {arr.shape}")
    return torch.from_numpy(arr.astype(np.int64))


def pairs_grid(targets: Tensor, reconstructions: Tensor, path: Path, per_row: int = 16, limit: int = 64) -> Path:
    """A PNG of the first ``limit`` images: a row of targets above the row of their reconstructions."""
    from gan_lightning.callbacks.samples import save_grid

    k = min(len(targets), limit)
    cols = min(per_row, k)
    rows = []
    for i in range(0, k, cols):
        t, r = targets[i : min(i + cols, k)].float(), reconstructions[i : min(i + cols, k)].float()
        pad = cols - len(t)  # the last pair of rows filled with white tiles
        if pad:
            t, r = (torch.cat([a, a.new_ones(pad, *a.shape[1:])]) for a in (t, r))
        rows += [t, r]
    save_grid(torch.cat(rows), path, nrow=cols)
    return path


def invert_checkpoint(
    ckpt: str | Path,
    source: str,
    out: str | Path | None = None,
    steps: int = 500,
    lr: float = 0.05,
    restarts: int = 1,
    seed: int = 0,
    labels: str | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
) -> dict[str, Any]:
    """``gan-lightning invert``: invert a checkpoint's sampling generator on the images of ``source``
    (see ``model_images``) and write to ``out`` (default ``<run>/invert-<source>``): inversion.json (the
    settings, summary and per-image MSE, L1 and PSNR), z.npy (N, z_dim), reconstructions.npy (N, C, H,
    W in [0, 1]) and grid.png (target rows above reconstruction rows). Returns the JSON's content."""
    from gan_lightning.checkpoint import load_model
    from gan_lightning.files import write_json

    model = load_model(ckpt, device)
    need_images(model)
    images, source_labels, tag = model_images(model, source, data_dir)
    check_images(model, images, f"the images of '{source}'")
    given = read_labels(labels)
    conditional = model.labels_for(1) is not None
    y = given if given is not None else (source_labels if conditional else None)
    result = invert_images(model, images, y, steps, lr, restarts, seed)
    folder = Path(out) if out else Path(ckpt).parent.parent / f"invert-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    save_npy(folder / "z.npy", result.z.numpy().astype(np.float32))
    save_npy(folder / "reconstructions.npy", result.reconstructions.numpy().astype(np.float32))
    pairs_grid(images, result.reconstructions, folder / "grid.png")
    y_out = result.labels
    report: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "g_step": model.g_step,
        "source": source,
        "steps": steps,
        "lr": lr,
        "restarts": restarts,
        "seed": seed,
        "generator": "ema" if getattr(model, "G_ema", None) is not None else "raw",
        "z_dim": model.z_dim,
        "summary": result.summary(),
        "per_image": [
            {"index": i, "mse": float(m), "l1": float(a), "psnr": float(p)}
            | ({} if y_out is None else {"label": int(y_out[i])})
            for i, (m, a, p) in enumerate(zip(result.mse, result.l1, result.psnr))
        ],
        "files": {"z": "z.npy", "reconstructions": "reconstructions.npy", "grid": "grid.png"},
    }
    write_json(folder / "inversion.json", report)  # strict JSON: an exact image's PSNR (inf) is null
    report["written_to"] = str(folder)
    return report
