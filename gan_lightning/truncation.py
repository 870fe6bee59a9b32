"""``gan-lightning truncation CKPT``: the truncation trick's quality/diversity trade-off.

The sampling generator (the EMA one where there is one) is evaluated at each strength psi of
``--psi`` through the model's own truncation hook (``truncated``; models with
``truncation_trick``): StyleGAN's w' = w_avg + psi (w - w_avg) (Karras et al. 2019, sec. 3.3;
psi = 1 is no truncation) and BigGAN's truncated normal z (Brock et al. 2019, sec. 4.1; every
psi truncates, larger psi less). Every psi uses the same seeded z (and classes), so the rows
differ by the truncation alone. The table (FID, precision, recall... vs psi) is written as JSON,
Markdown and a plot beside the run: ``<run>/truncation-<ckpt>.{json,md,png}``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gan_lightning.checkpoint import load_model
from gan_lightning.cpu_memory import check_fits_in_memory
from gan_lightning.files import write_json, write_text
from gan_lightning.registry import ConfigError

DEFAULT_PSI = "1.0,0.9,0.7,0.5"
PSI_FIX = f"give a comma list of distinct numbers such as --psi {DEFAULT_PSI}"


def parse_psis(text: str) -> list[float]:
    """'1.0,0.7,0.5' -> [1.0, 0.7, 0.5]: finite, distinct numbers, at least one."""
    parts = [p.strip() for p in str(text).split(",")]
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(f"bad value for '--psi': '{p}' is not a number; {PSI_FIX}") from None
        if not math.isfinite(v):
            raise ConfigError(f"bad value for '--psi': {p} is not finite; {PSI_FIX}")
        values.append(v)
    if len(set(values)) != len(values):
        raise ConfigError(f"bad value for '--psi': '{text}' repeats a value; {PSI_FIX}")
    return values


def check_truncation(model: Any, psis: list[float]) -> None:
    """Refuse a model without a truncation trick, and each psi its hook refuses, before any work."""
    if not getattr(model, "truncation_trick", False):
        raise ConfigError(
            f"model '{model.cfg.model.name}' has no truncation trick (the models with one: stylegan, biggan); "
            "evaluate it with `gan-lightning evaluate CKPT`"
        )
    for psi in psis:
        try:
            model.truncated(torch.zeros(0, model.z_dim), model.generator_for_sampling(), psi)
        except ConfigError as e:
            raise ConfigError(str(e).replace("'--truncation'", "'--psi'")) from None


def truncated_samples(model: Any, net: nn.Module, psi: float, n: int, seed: int) -> tuple[Tensor, nn.Module]:
    """(``n`` samples in model space at strength ``psi``, the net that made them): the seed's z
    (the same for every psi) through the model's truncation hook; its own redraws from ``seed + 1``;
    a conditional model's labels are ``labels_for(n)``."""
    z = model.draw_z(n, torch.Generator().manual_seed(seed))
    z, net = model.truncated(z, net, float(psi), torch.Generator().manual_seed(seed + 1))
    return model.generate_from(z, net, model.labels_for(n)), net


def truncation_sweep(
    ckpt: str | Path,
    psis: list[float],
    n: int = 10000,
    metrics: list[str] | None = None,
    features: str = "classifier",
    ref_split: str = "test",
    device: str = "cpu",
    seed: int = 4321,
    data_dir: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of the sampling generator at each psi: {rows, keys, ...}; writes json, md and png
    (``out``: their path without suffix; default ``<run>/truncation-<ckpt stem>``)."""
    from gan_lightning.evaluate import checkpoint_evaluator

    if n < 2:
        raise ConfigError(f"bad value for '--n': must be >= 2 samples, got {n}")
    model = load_model(ckpt, device)
    check_fits_in_memory(n, model)
    check_truncation(model, psis)
    names = metrics or ["fid", "prdc"]
    evaluator = checkpoint_evaluator(model, names, n, features, ref_split, device, data_dir)
    evaluator.prepare().check_model(model)
    net = model.generator_for_sampling()
    rows = []
    for psi in psis:
        x, net_psi = truncated_samples(model, net, psi, n, seed)
        values = evaluator.compute(evaluator.extract_generated(x, model, model.labels_for(n)), (model, net_psi))
        rows.append({"psi": psi, **values})
        print(f"psi {psi:g}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()), flush=True)
    keys = [k for k in rows[0] if k != "psi"]
    stem = Path(out) if out else Path(ckpt).parent.parent / f"truncation-{Path(ckpt).stem}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": str(ckpt),
        "model": str(model.cfg.model.name),
        "g_step": model.g_step,
        "generator": "ema" if getattr(model, "G_ema", None) is not None else "raw",
        "n": n,
        "seed": seed,
        **evaluator.describe(),
        "keys": keys,
        "rows": rows,
    }
    write_json(stem.with_suffix(".json"), result)
    write_text(stem.with_suffix(".md"), table_markdown(rows, keys))
    from gan_lightning.plots import plot_truncation

    plot = plot_truncation(rows, keys, stem.with_suffix(".png"))
    result["written_to"] = [str(stem.with_suffix(s)) for s in (".json", ".md")] + ([str(plot)] if plot else [])
    return result


def table_markdown(rows: list[dict[str, Any]], keys: list[str]) -> str:
    """One row per psi, one column per metric key."""
    lines = ["| psi | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['psi']:g} | " + " | ".join(f"{r[k]:.4g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"
