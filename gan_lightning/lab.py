"""The mode-collapse lab: one seeded study per (benchmark, method), and one table of modes
covered, share of high-quality samples (2-D mixtures) and reverse KL of the mode histogram, beside
the published rows. Benchmarks: the PacGAN/VEEGAN 2-D protocol on the grid and the ring
(``gmm_<mixture>_pacgan_protocol``) and stacked Fashion-MNIST (``stacked_fashion``, 1,000 modes).

``gan-lightning lab [benchmarks=grid,ring] [methods=gan,pacgan4,...] [seeds=0-9] [out=DIR] [k=v ...]``
Every study resumes: a second call runs only the seeds that are missing. A method that a
benchmark's model refuses (e.g. unrolling a BatchNorm critic) gets a row saying why.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from gan_lightning.config import load_config
from gan_lightning.files import write_json, write_text
from gan_lightning.registry import ConfigError, first_line
from gan_lightning.study import STUDY_KEYS, check_study, plan_study, run_study

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
# keys each row's study sets (the user's overrides come after them, and the last value wins): refused
SET_BY_LAB: dict[str, str] = {
    "exp": "benchmarks=grid,ring,stacked_fashion picks the experiments",
    "model": "the benchmark's experiment sets the model",
    "model.name": "the benchmark's experiment sets the model",
    **{m.split("=")[0]: "methods=... picks the remedies" for ms in METHODS.values() for m in ms},
}
# benchmark -> (experiment, its metric keys for modes, high quality (None: no such measure), KL)
BENCHMARKS: dict[str, tuple[str, tuple[str, str | None, str]]] = {
    "grid": ("gmm_grid_pacgan_protocol", ("modes/covered", "modes/high_quality", "modes/kl")),
    "ring": ("gmm_ring_pacgan_protocol", ("modes/covered", "modes/high_quality", "modes/kl")),
    "stacked_fashion": ("stacked_fashion", ("stacked/modes", None, "stacked/kl")),
}

# (modes, high-quality %, reverse KL) as published: Lin et al. 2018 (PacGAN), Table 1 (means over 10 trials;
# their ± is a standard error, ours a standard deviation). VEEGAN's row (Srivastava et al. 2017) is not in that
# table: its figures are as our issue tracker quoted them (modes and high quality match VEEGAN's own table 1;
# the KL we could not check)
PUBLISHED: dict[tuple[str, str], tuple[float, float | None, float | None]] = {
    ("ring", "GAN (PacGAN Table 1)"): (6.3, 98.2, 0.45),
    ("ring", "PacGAN4 (PacGAN Table 1)"): (7.8, 95.9, 0.07),
    ("grid", "GAN (PacGAN Table 1)"): (17.3, 94.8, 0.70),
    ("grid", "PacGAN4 (PacGAN Table 1)"): (24.8, 93.6, 0.04),
    ("grid", "VEEGAN (as quoted)"): (24.6, 40.0, 0.11),
}
COLUMNS = ("modes", "high_quality", "kl")


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = list(dict.fromkeys(n for n in text.split(",") if n))  # a name given twice is one row
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"bad value for '{what}': {', '.join(unknown) or 'empty'}; choose from {', '.join(known)}")
    return names


def run_lab(args: list[str], echo: bool = True) -> Path:
    """Run (or resume) every study of the lab and write lab.json and lab.md; returns the lab's directory."""
    opts = {"benchmarks": "grid,ring", "methods": ",".join(METHODS), "seeds": "0-9", "out": "runs/lab"}
    overrides, study_keys = [], []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in opts:
            opts[key] = value
        elif sep and key in STUDY_KEYS:  # jobs=, launcher=, ...: for the study runner
            study_keys.append(arg)
        elif sep and key in SET_BY_LAB:  # the last value would win, and the row would carry the wrong name
            raise ConfigError(f"'{key}' is set by the lab for each row: drop {arg} ({SET_BY_LAB[key]})")
        else:
            overrides.append(arg)
    benchmarks = _names(opts["benchmarks"], list(BENCHMARKS), "benchmarks")
    methods = _names(opts["methods"], list(METHODS), "methods")
    out = Path(opts["out"])
    rows: list[dict[str, Any]] = []
    for bench in benchmarks:  # the user's own overrides must hold for every benchmark: errors stop here
        load_config([f"exp={BENCHMARKS[bench][0]}", *overrides])
    studies: dict[tuple[str, str], list[str] | str] = {}  # (benchmark, method) -> the study's arguments, or why not
    for bench in benchmarks:
        for method in methods:
            study_args = [f"exp={BENCHMARKS[bench][0]}", *METHODS[method], *overrides]
            try:
                load_config(study_args)
            except ConfigError as e:  # this benchmark's model refuses the method: say why, go on
                studies[bench, method] = first_line(e)
                continue
            args_of_study = [*study_args, *study_keys, f"seeds={opts['seeds']}", f"out={out / bench / method}"]
            check_study(plan_study(args_of_study))  # every study's refusals before any study runs
            studies[bench, method] = args_of_study
    for (bench, method), study in studies.items():
        if isinstance(study, str):
            rows.append({"benchmark": bench, "method": method, "seeds": 0, "refused": study})
            continue
        run_study(study, echo=echo)
        rows.append(lab_row(bench, method, out / bench / method))
    devices = sorted({d for r in rows for d in r.get("devices") or []})  # where the seeds ran, not this process
    result = {
        "rows": rows,
        "published": published_rows(benchmarks),
        "overrides": overrides,
        "device": ", ".join(devices),
    }
    out.mkdir(parents=True, exist_ok=True)  # every method refused: no study made it
    write_json(out / "lab.json", result)
    write_text(out / "lab.md", lab_markdown(result))
    return out


def lab_row(bench: str, method: str, sdir: Path) -> dict[str, Any]:
    """One table row from a study's report: mean and std over the completed seeds."""
    report = json.loads((sdir / "report.json").read_text())
    final = report["final"]
    others = [s for s in report["per_seed"] if s.get("status") != "completed"]  # diverged, failed, short, ...
    row: dict[str, Any] = {
        "benchmark": bench,
        "method": method,
        "seeds": len(report["completed"]),
        "asked": len(report["seeds"]),
        "not_completed": dict(Counter(s.get("status", "missing") for s in others)),
        "incomplete": [{"seed": s["seed"], "why": why_not_completed(s)} for s in others],
    }
    for column, key in zip(COLUMNS, BENCHMARKS[bench][1]):
        agg = final.get(key, {}) if key else {}
        # n: seeds with a finite value; measured: the study has the measure (its values may all be infinite)
        row[column] = {"mean": agg.get("mean"), "std": agg.get("std"), "n": agg.get("n", 0), "measured": key in final}
    wall = report.get("wall_s", {})
    row["wall_s_per_seed"] = wall.get("mean")
    steps = {s.get("steps_done") for s in report["per_seed"] if s.get("status") == "completed"}
    row["steps"] = sorted(x for x in steps if x is not None)
    row["devices"] = sorted(
        {s["device"] for s in report["per_seed"] if s.get("status") == "completed" and s.get("device")}
    )
    return row


def why_not_completed(seed: dict[str, Any]) -> str:
    """A seed's outcome (diverged; short: its extension failed) or else its run's error."""
    status = seed.get("status", "missing")
    return status if status in ("diverged", "short") else seed.get("error") or status


def published_rows(benchmarks: list[str]) -> list[dict[str, Any]]:
    return [
        {"benchmark": bench, "method": name, "modes": v[0], "high_quality_pct": v[1], "kl": v[2]}
        for (bench, name), v in PUBLISHED.items()
        if bench in benchmarks
    ]


def _pm(cell: dict[str, Any], seeds: int, scale: float = 1.0, digits: int = 1) -> str:
    """mean ± std, saying over how many of the ``seeds`` when some had no finite value (a reverse KL is
    infinite for a seed without a high-quality sample)."""
    if cell.get("mean") is None:  # no seed with a finite value, or no such measure on this benchmark
        return f"no finite value (0 of {seeds} seeds)" if cell.get("measured") and seeds else "–"
    text = f"{cell['mean'] * scale:.{digits}f}"
    if cell.get("std") is not None:  # one seed: no spread
        text += f" ± {cell['std'] * scale:.{digits}f}"
    n = cell.get("n", seeds)
    return text if n >= seeds else f"{text} ({n} of {seeds} seeds finite)"


def seeds_cell(row: dict[str, Any]) -> str:
    """'10', or '8 of 10 (1 diverged, 1 failed)' when some asked-for seeds did not complete."""
    asked = row.get("asked", row["seeds"])
    if row["seeds"] >= asked:
        return str(row["seeds"])
    why = ", ".join(f"{n} {status}" for status, n in sorted(row.get("not_completed", {}).items()))
    return f"{row['seeds']} of {asked}" + (f" ({why})" if why else "")


def incomplete_rows(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row that is refused or lacks some of its seeds (what makes ``gan-lightning lab`` exit 1)."""
    lines = []
    for r in rows:
        name = f"{r['benchmark']}/{r['method']}"
        if "refused" in r:
            lines.append(f"{name}: refused: {r['refused']}")
        elif r["seeds"] < r.get("asked", r["seeds"]):
            seeds = "; ".join(f"seed {s['seed']}: {s['why']}" for s in r.get("incomplete", []))
            lines.append(f"{name}: {r['asked'] - r['seeds']} of {r['asked']} seeds did not complete ({seeds})")
    return lines


def lab_markdown(result: dict[str, Any]) -> str:
    lines = [
        "| benchmark | method | seeds | steps | modes | high quality % | reverse KL | wall s / seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        if "refused" in r:
            lines.append(f"| {r['benchmark']} | {r['method']} | 0 | refused: {r['refused']} | | | | |")
            continue
        wall = r.get("wall_s_per_seed")
        steps = ",".join(str(s) for s in r["steps"])
        lines.append(
            f"| {r['benchmark']} | {r['method']} | {seeds_cell(r)} | {steps} | {_pm(r['modes'], r['seeds'])} | "
            f"{_pm(r['high_quality'], r['seeds'], 100.0)} | {_pm(r['kl'], r['seeds'], digits=2)} | "
            f"{'–' if wall is None else f'{wall:.0f}'} |"
        )
    for p in result["published"]:
        hq = "–" if p["high_quality_pct"] is None else f"{p['high_quality_pct']:.1f}"
        kl = "–" if p["kl"] is None else f"{p['kl']:.2f}"
        lines.append(f"| {p['benchmark']} | {p['method']} | published | – | {p['modes']:.1f} | {hq} | {kl} | – |")
    lines.append("")
    lines.append(f"Device: {result['device']}. Overrides: {' '.join(result['overrides']) or 'none'}.")
    return "\n".join(lines) + "\n"
