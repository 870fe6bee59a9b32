"""Figures written beside results: a run's curves, the comparison of two studies, a sweep's
metric against each parameter. Matplotlib (Agg) only, imported when a figure is drawn."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_lightning.files import save_figure

Curves = dict[str, tuple[list[float], list[float]]]


def read_curves(run_dir: Path) -> Curves:
    """{key: (G steps, values)} from a run's metrics.csv (empty when it has none)."""
    curves: Curves = {}
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return curves
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row["step"])
            for k, v in row.items():
                if k != "step" and v not in ("", None):
                    xs, ys = curves.setdefault(k, ([], []))
                    xs.append(step)
                    ys.append(float(v))
    return curves


def _figure(rows: int, cols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure outside pyplot (so drawing here never changes a notebook's backend) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=False)


def run_panels(curves: Curves, metric_keys: Sequence[str], limit: int = 8) -> list[list[str]]:
    """The panels of a run's figure: the losses together, then each metric (its raw-G twin, when
    logged, in the same panel)."""
    losses = sorted(k for k in curves if k.startswith("loss/"))
    metrics = [k for k in metric_keys if k in curves and not k.startswith(("raw/", "time/", "loss/"))]
    panels = [losses] if losses else []
    panels += [[k] + ([f"raw/{k}"] if f"raw/{k}" in curves else []) for k in metrics]
    return panels[:limit]


def plot_run_curves(run_dir: Path, metric_keys: Sequence[str], title: str = "") -> Path | None:
    """``run_dir/curves.png``: losses and metrics over G steps from metrics.csv; None without data."""
    run_dir = Path(run_dir)
    curves = read_curves(run_dir)
    panels = run_panels(curves, metric_keys)
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(rows, cols, (4 * cols, 3.1 * rows))
    for ax, keys in zip(axes.flat, panels):
        for key in keys:
            xs, ys = curves[key]
            raw = key.startswith("raw/")
            marker = "o" if len(xs) <= 30 else None
            ax.plot(xs, ys, ls="--" if raw else "-", marker=marker, ms=3, lw=1.2, label="raw G" if raw else key)
        ax.set_title("losses" if keys[0].startswith("loss/") else keys[0], fontsize=10)
        ax.set_xlabel("G step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = run_dir / "curves.png"
    save_figure(fig, out, dpi=100)
    return out


def plot_comparison(values: dict[str, list[list[float]]], names: tuple[str, str], out: Path) -> Path | None:
    """Each metric's final values of two studies side by side (a box and the seeds as points)."""
    keys = [k for k, (a, b) in values.items() if a or b]
    if not keys:
        return None
    fig, axes = _figure(1, len(keys), (2.8 * len(keys), 3.4))
    for ax, key in zip(axes[0], keys):
        groups = values[key]
        ax.boxplot([g if g else [math.nan] for g in groups], widths=0.5)
        for i, group in enumerate(groups, start=1):
            ax.scatter([i] * len(group), group, s=14, color="tab:red", zorder=3)
        ax.set_xticks([1, 2], [Path(n).name or n for n in names], fontsize=7, rotation=15)
        ax.set_title(key, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    save_figure(fig, out, dpi=100)
    return out


def plot_sweep(trials: list[dict[str, Any]], metric: str, out: Path) -> Path | None:
    """The sweep's metric against each numeric parameter that varied, one point per trial with a
    value (rows as the sweep's results.json: ``params`` and ``metric``); log x for a positive
    parameter spanning more than a decade."""
    params = sorted({k for t in trials for k in t.get("params", {})})
    numeric = [  # parameters with a number in every trial (lists such as betas are not plotted)
        p
        for p in params
        if all(isinstance(t["params"].get(p), (int, float)) for t in trials if p in t["params"])
        and len({t["params"].get(p) for t in trials}) > 1
    ]
    scored = [t for t in trials if isinstance(t.get("metric"), (int, float)) and math.isfinite(t["metric"])]
    if not numeric or not scored:
        return None
    fig, axes = _figure(1, len(numeric), (3.6 * len(numeric), 3.2))
    for ax, p in zip(axes[0], numeric):
        pts = [(float(t["params"][p]), float(t["metric"])) for t in scored if p in t["params"]]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=18)
        xs = [x for x, _ in pts]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
            ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    save_figure(fig, out, dpi=100)
    return out


def plot_truncation(rows: list[dict[str, Any]], keys: Sequence[str], out: Path) -> Path | None:
    """Each metric against the truncation strength psi, one panel per key (rows as the truncation
    sweep's table: ``psi`` and the values); None when no key has a finite value."""
    keys = [k for k in keys if any(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for r in rows)]
    if not keys:
        return None
    fig, axes = _figure(1, len(keys), (3.4 * len(keys), 3.0))
    for ax, key in zip(axes[0], keys):
        pts = sorted((float(r["psi"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float)))
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o")
        ax.set_xlabel("truncation psi")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    save_figure(fig, out, dpi=100)
    return out
