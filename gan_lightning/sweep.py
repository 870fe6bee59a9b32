"""Hyperparameter sweeps in wandb's sweep format, online (wandb sweep + agent) or offline.

A sweep file is a wandb sweep config whose ``command`` hands parameters to
``gan-lightning train`` as OmegaConf ``key=value`` overrides (``${args_no_hyphens}``), and whose
``parameters`` are config keys (``optim.lr_d``, ``model.n_critic``...). Fixed overrides go in the
command (``exp=gmm_ring``, ``steps=...``).

Offline (``--offline`` or no network) the same file is driven by wandb's open-source engine,
the ``sweeps`` package (grid, random, bayes): each trial runs here as a normal run directory
(an offline wandb run when ``logger=wandb`` and WANDB_MODE=offline), its ``summary.json`` feeds
the metric back to the engine, and ``results.csv``/``results.md`` hold the table.

Online and offline rank trials by the same value, :func:`rank_value`: the metric's **best** value
over the trial's evaluations. Online, each trial started by ``wandb agent`` logs to wandb (even
with ``logger=csv``) and writes that value to its wandb summary under ``metric.name``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gan_lightning.files import write_json, write_text
from gan_lightning.progress import progress
from gan_lightning.registry import ConfigError, close_matches, first_line
from gan_lightning.rundir import RunLock, last_error, read_summary, refuse_foreign_folder, run_train


def load_sweep(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(cfg, dict) or "parameters" not in cfg or "method" not in cfg:
        raise ConfigError(f"{path} is not a wandb sweep config (it needs 'method' and 'parameters')")
    if cfg["method"] != "grid" and "metric" not in cfg:
        raise ConfigError(f"{path}: method '{cfg['method']}' needs a 'metric: {{name, goal}}'")
    params = cfg["parameters"]
    if not isinstance(params, dict) or not params:
        raise ConfigError(
            f"{path}: 'parameters' must be a mapping of config keys to their search spaces (wandb's sweep format), "
            f"such as 'optim.lr_g: {{values: [1.0e-4, 2.0e-4]}}'; got {type(params).__name__} {params!r}"
        )
    bad = [key for key, spec in params.items() if not isinstance(spec, dict)]
    if bad:
        raise ConfigError(
            f"{path}: each parameter is a mapping such as '{bad[0]}: {{values: [...]}}' or '{{value: V}}' or "
            f"'{{min: A, max: B}}' (wandb's sweep format), got a bare value for {', '.join(bad)}"
        )
    metric = cfg.get("metric")
    if metric is not None and not (isinstance(metric, dict) and metric.get("name")):
        raise ConfigError(
            f"{path}: 'metric' must be a mapping such as 'metric: {{name: fid, goal: minimize}}', got {metric!r}"
        )
    for key, spec in params.items():
        if "values" in spec and not (isinstance(spec["values"], list) and spec["values"]):
            raise ConfigError(f"{path}: parameter {key}: 'values' must be a non-empty list, got {spec['values']!r}")
    check_engine_schema(path, cfg)
    if "${args_no_hyphens}" not in [str(w) for w in cfg.get("command") or []]:
        raise ConfigError(
            f"{path}: the sweep's 'command' must end with ${{args_no_hyphens}} (each parameter as a key=value "
            "override of gan-lightning train); wandb's default command passes --key=value, which train rejects"
        )
    return cfg


def engine_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """What wandb's sweep engine reads: the sweep file less its command and where it logs."""
    return {k: v for k, v in cfg.items() if k not in ("program", "command", "project", "entity", "name")}


def check_engine_schema(path: str | Path, cfg: dict[str, Any]) -> None:
    """wandb's own schema of a sweep (method, metric, each parameter's distribution), as a ConfigError naming what
    it refuses. YAML reads 1e-4 (no dot, unsigned exponent) as a string, the most common cause: said so."""
    try:
        from sweeps.config import SweepConfig
    except ImportError:  # pragma: no cover  (online sweeps: wandb's server checks it)
        return
    try:
        SweepConfig(engine_config(cfg))
    except Exception as e:  # jsonschema's ValidationError, ValueError
        where = " ".join(str(e).split("\n")[0].split())[:300]
        strings = [
            f"{key}: {field} {v!r}"
            for key, spec in cfg["parameters"].items()
            for field, v in spec.items()
            if field in ("min", "max", "mu", "sigma", "q") and isinstance(v, str)
        ]
        hint = (
            f"; {', '.join(strings)} is a string to YAML: write numbers with a dot and a signed exponent, e.g. 1.0e-4"
            if strings
            else ""
        )
        raise ConfigError(f"{path} is not a valid wandb sweep: {where}{hint}") from None


def fixed_overrides(cfg: dict[str, Any]) -> list[str]:
    """The key=value words of the sweep's command (everything that is not a macro or the program)."""
    words = [str(w) for w in cfg.get("command", [])]
    return [w for w in words if "=" in w and not w.startswith("${")]


def check_keys(cfg: dict[str, Any]) -> None:
    """Every swept key must be a valid config key: load one config with each key's first value."""
    from gan_lightning.config import load_config

    example = []
    for key, spec in cfg["parameters"].items():  # a value of each: fixed, the first listed, the lower end or the mean
        value = next((spec[f] for f in ("value", "min", "mu") if f in spec), spec.get("values", [None])[0])
        example.append(override(key, value))
    load_config([*fixed_overrides(cfg), *example])
    check_goal(cfg)


def check_goal(cfg: dict[str, Any]) -> None:
    """The sweep's ``metric.goal`` must agree with the metric's direction: a trial's value is its
    best evaluation by that direction (:func:`rank_value`), which the goal then maximizes or
    minimizes. A metric without a direction (``kid_std``) has no best value: no sweep signal."""
    from gan_lightning.metrics.evaluator import METRICS, full_key

    name = (cfg.get("metric") or {}).get("name")
    goal = (cfg.get("metric") or {}).get("goal") or "minimize"  # wandb's default goal
    if not name:
        return
    from gan_lightning.metrics.translation import DIRECTIONS as TRANSLATION

    directions = {full_key(n, k): d for n in METRICS for k, d in METRICS[n].directions.items()}
    base = name[len("raw/") :] if name.startswith("raw/") else name
    measure = base.split("/", 1)[1] if "/" in base else ""
    if base not in directions and measure in TRANSLATION:  # a translation metric: <direction>/<measure>
        directions[base] = TRANSLATION[measure]
    if base not in directions:
        close = close_matches(base, list(directions))
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"sweep metric '{name}' is logged by no metric, so no trial would be ranked; {hint}"
            f"translation metrics are <direction>/<measure> with a measure of {', '.join(TRANSLATION)}"
        )
    higher = directions[base]
    if higher is None:
        with_direction = ", ".join(sorted(k for k, d in directions.items() if d is not None))
        raise ConfigError(
            f"sweep metric '{name}' has no direction, so a trial has no best value to rank by; use one of "
            f"{with_direction}"
        )
    want = "maximize" if higher else "minimize"
    if goal != want:
        raise ConfigError(
            f"sweep metric '{name}' is better when {'higher' if higher else 'lower'}: its goal must be '{want}', "
            f"not '{goal}' (a trial's value is its best '{name}')"
        )


def override(key: str, value: Any) -> str:
    """``key=value`` as the config parser reads it: null, true/false and lists in YAML/JSON form (Python's
    ``str`` gave 'None' and 'True'), strings as they are."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


OUTCOMES = ("completed", "diverged")  # a trial's result; any other status is run again by the next call


def flat_params(run_config: dict[str, Any]) -> dict[str, Any]:
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in run_config.items()}


def rank_value(summary: dict[str, Any] | None, name: str) -> float | None:
    """The value a sweep ranks a trial by: the **best** value of metric ``name`` over the run's
    evaluations (by the metric's own direction: the lowest FID, the highest mode coverage), i.e.
    ``summary.json``'s ``best[name]["value"]``; None when the run has none (a metric without a
    direction, or never finite). Both sweep paths use it: the offline driver reads it from each
    trial's summary.json, and a trial under ``wandb agent`` writes it to its wandb summary under
    ``name`` at the end of the run. Best, not final, because wandb's sweep engine (bayes) takes the
    extremum of a metric over the run's logged history and summary: a trial's value online is its
    best evaluation, whatever the summary says."""
    if not summary:
        return None
    entry = (summary.get("best") or {}).get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if value is not None else None


def run_offline(
    path: str | Path, count: int, out: str | Path | None = None, seed: int = 0, echo: bool = True
) -> tuple[Path, list[dict[str, Any]]]:
    """Run up to ``count`` trials locally; returns the sweep directory and the result rows."""
    try:
        import sweeps  # noqa: F401  (run_trials' engine)
    except ImportError as e:  # pragma: no cover
        raise ConfigError("offline sweeps need wandb's engine: pip install sweeps") from e
    cfg = load_sweep(path)
    check_keys(cfg)
    engine_cfg = engine_config(cfg)
    sdir = Path(out) if out else Path("runs") / "sweeps" / Path(path).stem
    refuse_a_folder_of_something_else(sdir)
    with RunLock(sdir, what="sweep"):  # one process per sweep folder: a second would rewrite results.json
        results = read_results(sdir)
        check_same_sweep(sdir, results, path, engine_cfg, fixed_overrides(cfg))
        rows = run_trials(sdir, cfg, engine_cfg, list(results["rows"]) if results else [], count, seed, echo)
    return sdir, rows


def run_trials(
    sdir: Path,
    cfg: dict[str, Any],
    engine_cfg: dict[str, Any],
    rows: list[dict[str, Any]],
    count: int,
    seed: int,
    echo: bool,
) -> list[dict[str, Any]]:
    """The trials after ``rows`` up to ``count``, each row saved to results.json as it finishes."""
    import numpy as np
    import sweeps

    metric = cfg.get("metric", {}).get("name")
    runs = [
        sweeps.SweepRun(
            name=r["trial"],
            config={k: {"value": v} for k, v in r["params"].items()},
            state=sweeps.RunState.finished,
            summary_metrics=engine_metrics(metric, r["metric"]),
        )
        for r in rows
    ]
    goal, identity = cfg.get("metric", {}).get("goal"), sweep_identity(engine_cfg, fixed_overrides(cfg))
    for i, r in enumerate(rows):  # refused, interrupted or killed before: run again (resume=auto continues it)
        if r["status"] not in OUTCOMES:
            if echo:
                print(f"[sweep] {r['trial']} again (it ended {r['status']})", file=sys.stderr)
            rows[i] = run_trial(sdir, cfg, r["trial"], r["params"], metric)
            runs[i].summary_metrics = engine_metrics(metric, rows[i]["metric"])
            save_rows(sdir, rows, metric, goal, identity)
    bar = progress(total=count, initial=min(len(rows), count), desc=f"sweep {sdir.name}", unit="trial", verbose=echo)
    while len(rows) < count:
        np.random.seed((seed + len(rows)) % 2**32)
        random.seed((seed + len(rows)) % 2**32)
        proposal = sweeps.next_run(engine_cfg, runs, validate=True)
        if proposal is None:  # a finished grid
            break
        params = flat_params(proposal.config)
        trial = f"trial_{len(rows):03d}"
        if echo:
            bar.write(f"[sweep] {trial}: {' '.join(override(k, v) for k, v in params.items())}", file=sys.stderr)
        row = run_trial(sdir, cfg, trial, params, metric)
        value = row["metric"]
        rows.append(row)
        save_rows(sdir, rows, metric, goal, identity)
        runs.append(
            sweeps.SweepRun(
                name=trial,
                config=proposal.config,
                state=sweeps.RunState.finished,
                summary_metrics=engine_metrics(metric, value),
            )
        )
        bar.update(1)
    bar.close()
    save_rows(sdir, rows, metric, goal, identity)
    return rows


def engine_metrics(metric: str | None, value: float | None) -> dict[str, float]:
    """A trial's ranking value as the sweep engine reads it (none without a metric or a finite value)."""
    return {metric: value} if metric and value is not None else {}


def run_trial(
    sdir: Path, cfg: dict[str, Any], trial: str, params: dict[str, Any], metric: str | None
) -> dict[str, Any]:
    """One trial's run (``resume=auto``: a trial run before continues) and its results row."""
    trial_dir = sdir / trial
    code = run_train(
        [*fixed_overrides(cfg), *[override(k, v) for k, v in params.items()]],
        trial_dir,
        sdir / "logs" / f"{trial}.log",
        {"WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "GAN_LIGHTNING_GROUP": sdir.name},
    )
    # exit 2: refused before training (a bad value, or the directory locked by another run)
    summary = read_summary(trial_dir) if code != 2 else None
    row = {
        "trial": trial,
        "params": params,
        "status": (summary or {}).get("status", f"exit {code}"),
        "metric": rank_value(summary, metric) if metric else None,
        "run_dir": str(trial_dir),
    }
    if code != 0:
        row["error"] = last_error(sdir / "logs" / f"{trial}.log") or f"exit {code}"
    return row


def sweep_identity(engine_cfg: dict[str, Any], fixed: list[str]) -> dict[str, Any]:
    """What makes two sweeps the same: the engine's settings (method, metric, parameters) and the fixed overrides."""
    return json.loads(json.dumps({"engine": engine_cfg, "fixed": fixed}, sort_keys=True, default=str))


def refuse_a_folder_of_something_else(sdir: Path) -> None:
    """``--out`` must be new, empty or a sweep's folder: results.csv/.md/.png would be written over other files."""
    ours = lambda name: name == "logs" or name.startswith(("trial_", "best_study_"))  # noqa: E731
    refuse_foreign_folder(sdir, "results.json", ours, "a sweep's folder", "give a new or empty --out folder")


def check_same_sweep(
    sdir: Path, results: dict[str, Any] | None, path: str | Path, engine_cfg: dict[str, Any], fixed: list[str]
) -> None:
    """Refuse a sweep folder whose results.json was written by another sweep (or an edited file): its trials
    would be ranked as this sweep's. Folders from before the identity was stored are taken as they are."""
    if results is None:
        return
    stored = results.get("sweep")
    if stored is not None and stored != sweep_identity(engine_cfg, fixed):
        raise ConfigError(
            f"{sdir} holds another sweep's trials (its method, metric, parameters or fixed overrides differ from "
            f"{path}); give another --out"
        )


def read_results(sdir: Path) -> dict[str, Any] | None:
    """A sweep folder's results.json ({"rows": [...], ...}), None if there is none; a ConfigError naming the file
    when it cannot be read as one (cut by a full disk, edited by hand)."""
    path = sdir / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read ({first_line(e)}); give another --out, or delete it") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise ConfigError(f"{path} is not a sweep's results (no list of rows); give another --out, or delete it")
    return results


def best_row(rows: list[dict[str, Any]], goal: str | None) -> dict[str, Any] | None:
    scored = [r for r in rows if r["metric"] is not None and r["status"] == "completed"]
    if not scored:
        return None
    return (max if goal == "maximize" else min)(scored, key=lambda r: r["metric"])


def save_rows(
    sdir: Path, rows: list[dict[str, Any]], metric: str | None, goal: str | None, identity: dict[str, Any]
) -> None:
    best = best_row(rows, goal)
    write_json(sdir / "results.json", {"metric": metric, "goal": goal, "rows": rows, "best": best, "sweep": identity})
    keys = sorted({k for r in rows for k in r["params"]})
    table = io.StringIO()
    w = csv.writer(table)
    w.writerow(["trial", "status", metric or "metric", *keys])
    for r in rows:
        w.writerow([r["trial"], r["status"], r["metric"], *[r["params"].get(k) for k in keys]])
    write_text(sdir / "results.csv", table.getvalue())
    lines = [f"| trial | status | {metric} | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for r in rows:
        mark = " **best**" if best is not None and r["trial"] == best["trial"] else ""
        m = "" if r["metric"] is None else f"{r['metric']:.4g}"
        lines.append(
            f"| {r['trial']}{mark} | {r['status']} | {m} | " + " | ".join(str(r["params"].get(k)) for k in keys) + " |"
        )
    write_text(sdir / "results.md", "\n".join(lines) + "\n")
    if metric:
        from gan_lightning.plots import plot_sweep

        plot_sweep([r for r in rows if r["status"] == "completed"], metric, sdir / "results.png")


def run_online(path: str | Path, count: int) -> int:
    """``wandb sweep FILE`` then ``wandb agent ID --count N`` (needs a wandb login and network).
    Each trial the agent starts logs to wandb (whatever its ``logger``) and, at its end, writes its
    :func:`rank_value` under ``metric.name`` to its wandb summary; the agent's environment names
    the metric (``GAN_LIGHTNING_SWEEP_METRIC``) so that a trial without it says so."""
    cfg = load_sweep(path)
    check_keys(cfg)  # a bad key or goal fails here, before a sweep is created on the server
    out = subprocess.run(["wandb", "sweep", str(path)], capture_output=True, text=True)
    text = out.stdout + out.stderr
    sys.stderr.write(text)
    sweep_id = next(
        (line.split("wandb agent")[-1].strip() for line in text.splitlines() if "wandb agent" in line), None
    )
    if out.returncode != 0 or not sweep_id:
        raise ConfigError("`wandb sweep` failed (not logged in, or no network?); run the sweep locally with --offline")
    from gan_lightning.wandb_utils import SWEEP_METRIC_ENV

    env = dict(os.environ)
    metric = (cfg.get("metric") or {}).get("name")
    if metric:
        env[SWEEP_METRIC_ENV] = str(metric)
    return subprocess.run(["wandb", "agent", *shlex.split(sweep_id), "--count", str(count)], env=env).returncode


def best_overrides(sdir: Path, sweep_file: str | Path) -> list[str]:
    """The fixed overrides plus the best trial's parameters (for a study of the winner)."""
    data = json.loads((sdir / "results.json").read_text())
    if not data.get("best"):
        raise ConfigError(f"no completed trial with the metric in {sdir}; nothing to study")
    return [*fixed_overrides(load_sweep(sweep_file)), *[override(k, v) for k, v in data["best"]["params"].items()]]
