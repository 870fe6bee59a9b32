"""``gan-lightning sample``: samples of a checkpoint in data space, as .npy or a .png grid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gan_lightning.callbacks.samples import save_grid, save_scatter, to_unit
from gan_lightning.checkpoint import load_model
from gan_lightning.cpu_memory import check_fits_in_memory
from gan_lightning.files import save_npy
from gan_lightning.registry import ConfigError

if TYPE_CHECKING:
    from gan_lightning.models.base import GANModule


def sample_data_space(
    ckpt: str | Path, n: int, seed: int = 0, device: str = "cpu", raw: bool = False, truncation: float | None = None
) -> tuple[torch.Tensor, GANModule]:
    """(samples, model): float32 toy points (n, 2) or images (n, C, H, W) in [0, 1];
    ``truncation``: the model's truncation trick at that strength (models without one refuse it)."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    model = load_model(ckpt, device)
    check_fits_in_memory(n, model)
    if raw:
        model.use_raw_generators()
    if model.info.kind == "pair" and truncation is not None:
        model.truncated(torch.empty(0), model.generator_for_sampling(), truncation)  # translations have none: refused
    if model.info.kind == "pair":  # translations of n test inputs (a seeded choice), A -> B
        from gan_lightning.data import build_datamodule
        from gan_lightning.data.base import to_model_space
        from gan_lightning.data.domains import DomainsDataModule
        from gan_lightning.data.translation import PairedDataModule
        from gan_lightning.metrics.reference import choose

        dm = build_datamodule(model.cfg)
        assert isinstance(dm, (PairedDataModule, DomainsDataModule))  # the DataModules of kind "pair"
        a, _, _ = dm.test_pairs()
        if n > len(a):
            raise ConfigError(
                f"bad value for '--n': an image-to-image model translates test images, and the task has {len(a)}; "
                f"use --n {len(a)} or fewer"
            )
        idx = choose(len(a), n, seed) if n < len(a) else torch.arange(len(a))
        return to_unit(model.translate(to_model_space(a[idx])).float().cpu()), model
    x = model.sample(n, generator=torch.Generator().manual_seed(seed), truncation=truncation).float().cpu()
    if model.info.kind == "image":
        x = to_unit(x)
    return x, model


def check_finite(x: torch.Tensor, ckpt: str | Path) -> None:
    """Refuse non-finite samples (a diverged generator), saying what the run's summary records."""
    bad = int((~torch.isfinite(x)).sum())
    if not bad:
        return
    from gan_lightning.rundir import read_summary

    summary = read_summary(Path(ckpt).resolve().parent.parent) or {}
    status = f" The run's summary.json says status '{summary['status']}'" if "status" in summary else ""
    if status and summary.get("diverged_at") is not None:
        status += f" (a loss became non-finite at step {summary['diverged_at']}): sample a checkpoint from before it"
    raise ConfigError(
        f"checkpoint {ckpt}: its generator gives non-finite samples ({bad} of {x.numel()} values are NaN or inf), "
        f"so nothing was written.{status + '.' if status else ''}"
    )


def sample_to_file(
    ckpt: str | Path,
    n: int,
    out: str | Path,
    seed: int = 0,
    device: str = "cpu",
    raw: bool = False,
    truncation: float | None = None,
) -> Path:
    out = Path(out)
    if out.suffix not in (".npy", ".png"):
        raise ConfigError(f"--out must end in .npy or .png, got '{out}'")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name ending in .npy or .png")
    x, model = sample_data_space(ckpt, n, seed, device, raw, truncation)
    check_finite(x, ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        save_npy(out, x.numpy().astype(np.float32))
    elif model.info.kind == "toy":  # points: a scatter plot over the mixture's modes
        save_scatter(x, model.info, out, f"{Path(ckpt).name}: {n} samples")
    else:  # images, or a translation model's translations of test inputs
        save_grid(x, out)
    return out


def style_mix_to_file(
    ckpt: str | Path,
    out: str | Path,
    n_a: int = 3,
    n_b: int = 4,
    seed: int = 0,
    device: str = "cpu",
    raw: bool = False,
    truncation: float | None = None,
) -> Path:
    """Karras et al. 2019's style mixing figure of a style-based generator as a PNG: a row of
    sources B, then for the coarse, middle and fine layers one row per source A (A, then A with
    that range's styles copied from each B); see ``gan_lightning.nets.style.style_mixing_grid``."""
    from gan_lightning.nets.style import StyleGenerator, style_mixing_grid

    out = Path(out)
    if out.suffix != ".png":
        raise ConfigError(f"--out must end in .png, got '{out}'")
    if n_a < 1 or n_b < 1:
        raise ConfigError(f"--rows and --cols must be >= 1, got {n_a} and {n_b}")
    model = load_model(ckpt, device)
    net = model.G if raw else model.generator_for_sampling()
    if not isinstance(net, StyleGenerator):
        raise ConfigError(
            f"checkpoint {ckpt}: style mixing needs a style-based generator (nets.g=style), "
            f"but model '{model.cfg.model.name}' has nets.g={model.cfg.nets.g}"
        )
    if truncation is not None:
        model.truncated(torch.empty(0), net, truncation)  # models without a tracked w_avg refuse it
    psi = 1.0 if truncation is None else float(truncation)
    images, nrow = style_mixing_grid(net, n_a, n_b, torch.Generator().manual_seed(seed), psi)
    check_finite(images, ckpt)
    save_grid(to_unit(images.float().cpu()), out, nrow=nrow)
    return out
