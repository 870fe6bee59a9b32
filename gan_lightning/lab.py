"""The mode-collapse lab: one seeded study per (mixture, method) on the PacGAN/VEEGAN 2-D
protocol (experiments ``gmm_<mixture>_pacgan_protocol``), and one table of modes covered, share
of high-quality samples and reverse KL of the mode histogram, beside the published rows.

``gan-lightning lab [mixtures=grid,ring] [methods=gan,pacgan4,...] [seeds=0-9] [out=DIR] [k=v ...]``
Every study resumes: a second call runs only the seeds that are missing.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gan_lightning.files import write_json
from gan_lightning.registry import ConfigError
from gan_lightning.study import run_study

# each remedy is a few overrides of the protocol's plain GAN
METHODS: dict[str, list[str]] = {
    "gan": [],
    "pacgan2": ["model.pack=2"],
    "pacgan4": ["model.pack=4"],
    "unrolled5": ["model.unroll=5"],
    "minibatch_discrimination": ["nets.d_minibatch=discrimination"],
    "minibatch_stddev": ["nets.d_minibatch=stddev"],
    "feature_matching": ["model.feature_matching=true"],
    "virtual_batch_norm": ["nets.g_norm=virtual_batch"],
}
MIXTURES = ("grid", "ring")

# (modes, high-quality %, reverse KL) as published: Lin et al. 2018 (PacGAN), Table 1, which also
# carries VEEGAN's row; only the rows quoted by our issue tracker are copied here
PUBLISHED: dict[tuple[str, str], tuple[float, float | None, float | None]] = {
    ("ring", "GAN (PacGAN Table 1)"): (6.3, None, None),
    ("grid", "GAN (PacGAN Table 1)"): (17.3, None, None),
    ("grid", "PacGAN4 (PacGAN Table 1)"): (24.8, 93.6, 0.04),
    ("grid", "VEEGAN (PacGAN Table 1)"): (24.6, 40.0, 0.11),
}
KEYS = ("modes/covered", "modes/high_quality", "modes/kl")


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"bad value for '{what}': {', '.join(unknown) or 'empty'}; choose from {', '.join(known)}")
    return names


def run_lab(args: list[str], echo: bool = True) -> Path:
    """Run (or resume) every study of the lab and write lab.json and lab.md; returns the lab's directory."""
    opts = {"mixtures": "grid,ring", "methods": ",".join(METHODS), "seeds": "0-9", "out": "runs/lab"}
    overrides = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in opts:
            opts[key] = value
        else:
            overrides.append(arg)
    mixtures = _names(opts["mixtures"], MIXTURES, "mixtures")
    methods = _names(opts["methods"], list(METHODS), "methods")
    out = Path(opts["out"])
    rows = []
    for mixture in mixtures:
        for method in methods:
            sdir = out / mixture / method
            study_args = [f"exp=gmm_{mixture}_pacgan_protocol", *METHODS[method], *overrides]
            run_study([*study_args, f"seeds={opts['seeds']}", f"out={sdir}"], echo=echo)
            rows.append(lab_row(mixture, method, sdir))
    result = {"rows": rows, "published": published_rows(mixtures), "overrides": overrides, "device": _device()}
    write_json(out / "lab.json", result)
    (out / "lab.md").write_text(lab_markdown(result))
    return out


def lab_row(mixture: str, method: str, sdir: Path) -> dict[str, Any]:
    """One table row from a study's report: mean and std over the completed seeds."""
    report = json.loads((sdir / "report.json").read_text())
    final = report["final"]
    row: dict[str, Any] = {"mixture": mixture, "method": method, "seeds": len(report["completed"])}
    for key in KEYS:
        agg = final.get(key, {})
        row[key] = {"mean": agg.get("mean"), "std": agg.get("std")}
    wall = report.get("wall_s", {})
    row["wall_s_per_seed"] = wall.get("mean")
    steps = {s.get("steps_done") for s in report["per_seed"] if s.get("status") == "completed"}
    row["steps"] = sorted(x for x in steps if x is not None)
    return row


def published_rows(mixtures: list[str]) -> list[dict[str, Any]]:
    return [
        {"mixture": mix, "method": name, "modes": v[0], "high_quality_pct": v[1], "kl": v[2]}
        for (mix, name), v in PUBLISHED.items()
        if mix in mixtures
    ]


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"


def _pm(cell: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    if cell.get("mean") is None:
        return "–"
    return f"{cell['mean'] * scale:.{digits}f} ± {(cell.get('std') or 0.0) * scale:.{digits}f}"


def lab_markdown(result: dict[str, Any]) -> str:
    lines = [
        "| mixture | method | seeds | steps | modes | high quality % | reverse KL | wall s / seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        wall = r.get("wall_s_per_seed")
        steps = ",".join(str(s) for s in r["steps"])
        lines.append(
            f"| {r['mixture']} | {r['method']} | {r['seeds']} | {steps} | {_pm(r['modes/covered'])} | "
            f"{_pm(r['modes/high_quality'], 100.0)} | {_pm(r['modes/kl'], digits=2)} | "
            f"{'–' if wall is None else f'{wall:.0f}'} |"
        )
    for p in result["published"]:
        hq = "–" if p["high_quality_pct"] is None else f"{p['high_quality_pct']:.1f}"
        kl = "–" if p["kl"] is None else f"{p['kl']:.2f}"
        lines.append(f"| {p['mixture']} | {p['method']} | published | – | {p['modes']:.1f} | {hq} | {kl} | – |")
    lines.append("")
    lines.append(f"Device: {result['device']}. Overrides: {' '.join(result['overrides']) or 'none'}.")
    return "\n".join(lines) + "\n"
