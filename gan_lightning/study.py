"""Seeded multi-run studies: one normal run per seed, then honest aggregates and plots.

``gan-lightning study exp=NAME seeds=0-9 [jobs=K] [reproducible=true] [out=DIR] [k=v ...]``
``... launcher=submitit [cluster=slurm|local] [partition=P] [timeout_min=M] [gpus_per_job=G]``

Each seed is a subprocess ``gan-lightning train ... seed=S out=<study>/seed_S resume=auto``, so a
study resumes by itself: a completed seed is skipped, an interrupted one continues from its
checkpoint. "Are GANs Created Equal?" (Lucic et al. 2018) is the reason: one run per model says
little, the spread over seeds says more.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from gan_lightning.files import save_figure, write_json, write_text
from gan_lightning.plots import read_curves
from gan_lightning.progress import progress
from gan_lightning.registry import ConfigError, close_matches
from gan_lightning.rundir import (
    RunLock,
    last_error,
    latest_checkpoint,
    read_summary,
    refuse_foreign_folder,
    run_train,
    threads_env,
)

STUDY_KEYS = ("seeds", "jobs", "reproducible", "launcher", "cluster", "partition", "timeout_min", "gpus_per_job")
LAUNCHERS = ("local", "submitit")


# ----------------------------------------------------------------------------- arguments
MAX_SEEDS = 10000  # a study's seeds at most: a typo like 0-100000000 must not build the list first


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0..4]; '1,3,7' -> [1, 3, 7]; '0-2,9' -> [0, 1, 2, 9]. A reversed range, a seed outside
    [0, 2**32 - 1] or more than MAX_SEEDS seeds is refused."""
    from gan_lightning.config import MAX_SEED

    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo or hi - lo >= MAX_SEEDS:
                    raise ConfigError(
                        f"bad value for 'seeds': the range '{part}' in '{text}' is "
                        + ("reversed; write it low-high" if hi < lo else f"over {MAX_SEEDS} seeds")
                    )
                seeds.extend(range(lo, hi + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"bad value for 'seeds': '{text}'; use a range like 0-9 or a list like 0,3,5") from None
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise ConfigError(f"bad value for 'seeds': '{text}'; seeds are in [0, 2**32 - 1]")
    if len(set(seeds)) > MAX_SEEDS:
        raise ConfigError(f"bad value for 'seeds': '{text}' gives over {MAX_SEEDS} seeds")
    return sorted(dict.fromkeys(seeds))


def split_args(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Study keys (seeds, jobs, reproducible, out) apart from the training overrides."""
    study: dict[str, str] = {}
    train: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in (*STUDY_KEYS, "out"):
            study[key] = value
        elif sep and key == "seed":
            raise ConfigError("a study sets the seed of each run: use seeds=0-9, not seed=")
        else:
            train.append(arg)
    return study, train


def study_dir_for(exp: str, overrides: list[str]) -> Path:
    """runs/studies/<exp>-<hash of the overrides>: the same command finds the same study."""
    tag = hashlib.sha1(" ".join(sorted(overrides)).encode()).hexdigest()[:8]
    return Path("runs") / "studies" / f"{exp}-{tag}"


# ----------------------------------------------------------------------------- running
# keys a study may be grown with: how runs log (``log.*``, ``logger``) and ``steps`` upwards (every seed is then
# resumed to the new length); any other difference, ``metrics.*`` included, measures another configuration
GROWABLE = ("log.", "logger", "steps")


def settings_of(overrides: list[str]) -> dict[str, str]:
    """key -> value of ``key=value`` overrides (the last one wins), less the keys a study may be grown with."""
    from gan_lightning.resume import may_change

    pairs = dict(o.split("=", 1) for o in overrides if "=" in o)
    return {k: v for k, v in pairs.items() if not may_change(k, GROWABLE)}


def is_done(run_dir: Path, steps: int | None = None) -> bool:
    """Completed to ``steps`` (default its own), or diverged: an outcome (resumed from its last checkpoint, a
    diverged run diverges again at the same step, resume being exact); anything else is run (again)."""
    s = read_summary(run_dir)
    if not s:
        return False
    target = s.get("steps", 1) if steps is None else steps
    return s.get("status") == "diverged" or (s.get("status") == "completed" and s.get("steps_done", 0) >= target)


def refuse_schedule_changing_extensions(sdir: Path, seeds: list[int], cfg: Any) -> None:
    """A larger ``steps`` extends the study's seeds; refuse it, before any run, where a seed's steps done
    used another lr than the longer schedule gives them (a linear decay that had started). Read from the
    checkpoint each seed would resume from: a run killed without a summary still has one."""
    from gan_lightning.optim import extension_conflict
    from gan_lightning.resume import checkpoint_state

    conflicts: dict[int, str] = {}
    for seed in seeds:
        run_dir = sdir / f"seed_{seed}"
        last = latest_checkpoint(run_dir)  # what the seed's resume=auto continues
        if is_done(run_dir, int(cfg.steps)) or last is None:
            continue  # not run again, or run from the start
        state = checkpoint_state(last)
        done, old = state["g_step"], state["steps"]
        if done is None or old is None:
            continue  # the seed's own resume reports an unreadable checkpoint
        why = extension_conflict(done, old, int(cfg.steps), cfg.optim) if old < int(cfg.steps) else None
        if why:
            conflicts[seed] = why
    if conflicts:
        first = next(iter(conflicts.values()))
        raise ConfigError(
            f"study {sdir}: seeds {', '.join(map(str, conflicts))} cannot grow: {first} (seed {next(iter(conflicts))})."
            " Each would then be neither run. Run the longer study in another out=DIR"
        )


def refuse_done_seeds_of_another_config(sdir: Path, seeds: list[int], overrides: list[str], steps: int) -> None:
    """A done seed is reported, not run again: refuse, before any run, one whose stored config.yaml differs from
    the config this study resolves to for it in more than steps, log.* and logger (an experiment file or a default
    edited since it ran). A seed that runs again is checked by its own resume."""
    from omegaconf import OmegaConf

    from gan_lightning.config import load_config, to_container
    from gan_lightning.resume import config_changes, may_change, through_schema

    for seed in seeds:
        run_dir = sdir / f"seed_{seed}"
        if not is_done(run_dir, steps) or not (run_dir / "config.yaml").is_file():
            continue
        stored = through_schema(cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))))
        now = to_container(load_config([*overrides, f"seed={seed}", f"out={run_dir}"]))
        changed = {k: v for k, v in config_changes(stored, now).items() if not may_change(k, GROWABLE)}
        if changed:
            listed = "\n".join(f"  {k}: {old} when it ran, {new} now" for k, (old, new) in changed.items())
            raise ConfigError(
                f"study {sdir}: seed {seed} ran with another config than these overrides give now (an experiment "
                f"file or a default changed since):\n{listed}\nits result would be reported as a run of "
                "this configuration; restore the old values, or run the study in another out=DIR"
            )


def run_one(
    overrides: list[str], seed: int, out: Path, group: str, log: Path, jobs: int = 1, gpu: str | None = None
) -> int:
    """One seed's run as a subprocess; with ``jobs`` runs in parallel each gets cores / jobs threads,
    and ``gpu`` (when given) is the one GPU it sees."""
    env = {"GAN_LIGHTNING_GROUP": group, **threads_env(jobs)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return run_train([*overrides, f"seed={seed}"], out, log, env)


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out, as its children must name them: the entries of its own
    ``CUDA_VISIBLE_DEVICES`` when set (ids or UUIDs), else 0..n-1; none on a CPU machine."""
    import torch

    if not torch.cuda.is_available():
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask:
        return [entry.strip() for entry in mask.split(",") if entry.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(jobs: int, gpus: list[str]) -> queue.Queue[str | None]:
    """One slot per parallel job, dealt round-robin over the GPUs: with 4 GPUs and jobs=4 each run
    has a GPU of its own; with jobs=8 two runs share each GPU. No GPUs: slots of None."""
    slots: queue.Queue[str | None] = queue.Queue()
    for i in range(jobs):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    return slots


def one_device_per_run(cfg: Any) -> bool:
    """Whether each seed's run trains on one device (then a local study pins it to one GPU)."""
    devices = cfg.trainer.get("devices", 1)
    return str(devices) in ("1", "auto") and int(cfg.trainer.get("num_nodes", 1)) == 1


def train_seed_job(overrides: list[str], seed: int, sdir: str, threads_jobs: int = 1) -> int:
    """One seed, as a submitit job (SLURM array task, or a local process): the same subprocess as a
    local study, so the run directory, its resume and the report are the same."""
    study_dir = Path(sdir)
    log = study_dir / "logs" / f"seed_{seed}.log"
    return run_one(overrides, seed, study_dir / f"seed_{seed}", study_dir.name, log, threads_jobs)


def launch_submitit(
    study: dict[str, str], overrides: list[str], todo: list[int], sdir: Path
) -> Iterator[tuple[int, int, str]]:
    """Submit the seeds as one job array through submitit (SLURM where ``sbatch`` exists, else local
    processes; ``cluster=`` forces one) and yield (seed, exit code, error) as jobs finish."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("launcher=submitit needs submitit: pip install 'gan_lightning[cluster]'") from None
    cluster = study.get("cluster") or None
    executor = submitit.AutoExecutor(folder=sdir / "submitit", cluster=cluster)
    params: dict[str, Any] = {"name": f"study-{sdir.name}", "timeout_min": study_int(study, "timeout_min", 24 * 60)}
    if study.get("gpus_per_job"):
        params["gpus_per_node"] = study_int(study, "gpus_per_job", 0)
    if study.get("partition"):
        params["slurm_partition"] = study["partition"]
    executor.update_parameters(**params)
    local = executor.cluster in ("local", "debug")  # processes on this machine share its cores
    jobs = executor.map_array(
        train_seed_job, [overrides] * len(todo), todo, [str(sdir)] * len(todo), [len(todo) if local else 1] * len(todo)
    )
    for seed, job in zip(todo, jobs):
        try:
            yield seed, int(job.result()), ""
        except Exception as e:  # the job itself failed (killed, timed out, node lost): its seed is reported
            yield (
                seed,
                1,
                f"submitit job {job.job_id}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
            )


def study_int(study: dict[str, str], key: str, default: int) -> int:
    """The study key ``key`` as a whole number >= 0 (``default`` when absent), else a ConfigError naming it."""
    text = study.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"bad value for '{key}': a whole number >= 0, got '{text}'")
    return value


@dataclass
class StudyPlan:
    """A study's call, parsed and checked against the config schema: what ``run_study`` runs."""

    study: dict[str, str]
    overrides: list[str]
    seeds: list[int]
    jobs: int
    launcher: str
    cfg: Any
    sdir: Path


def plan_study(args: list[str]) -> StudyPlan:
    """Parse a study's arguments and resolve its config and directory; a ConfigError (exit 2) before any run."""
    from gan_lightning.config import load_config

    study, overrides = split_args(args)
    if "seeds" not in study:
        raise ConfigError("a study needs seeds=..., e.g. seeds=0-4")
    seeds = parse_seeds(study["seeds"])
    jobs = max(1, study_int(study, "jobs", 1))
    for key in ("timeout_min", "gpus_per_job"):  # read by the submitit launcher only, checked before any run
        study_int(study, key, 0)
    launcher = study.get("launcher", "local")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"bad value for 'launcher': '{launcher}'; use one of {', '.join(LAUNCHERS)}")
    cfg = load_config(overrides)  # fails here, before any run starts, on a bad key or value
    exp = str(cfg.exp)
    if not any(a.startswith("exp=") for a in overrides):
        overrides = [f"exp={exp}", *overrides]
    sdir = Path(study["out"]) if "out" in study else study_dir_for(exp, overrides)
    refuse_a_folder_of_something_else(sdir)
    return StudyPlan(study, overrides, seeds, jobs, launcher, cfg, sdir)


# what a study writes in its folder (besides seed_<S>/): a folder holding anything else is not a study
STUDY_ENTRIES = ("report.json", "report.md", "curves.png", "finals.png", "logs", "reproducible", "submitit")


def refuse_a_folder_of_something_else(sdir: Path) -> None:
    """A study writes report.*, curves.png and study.json into ``out=``: not among a run's or other files."""
    ours = lambda name: name in STUDY_ENTRIES or name.startswith("seed_")  # noqa: E731
    refuse_foreign_folder(sdir, "study.json", ours, "a study's folder", "choose a new or empty out=DIR")


def steps_reached(sdir: Path) -> int:
    """The most G steps any seed of the study has trained: its summary's, or for a seed that did not complete its
    last checkpoint's (a run killed without a summary). What a study asks for, not what a seed reached, would
    lock a study whose growth failed at steps it never ran."""
    from gan_lightning.resume import checkpoint_state

    most = 0
    for run_dir in sdir.glob("seed_*"):
        s = read_summary(run_dir) or {}
        done = int(s.get("steps_done") or 0)
        last = latest_checkpoint(run_dir)
        if s.get("status") != "completed" and last is not None:
            done = max(done, checkpoint_state(last)["g_step"] or 0)
        most = max(most, done)
    return most


def run_study(args: list[str], echo: bool = True) -> Path:
    """Run (or resume) a study and write its report; returns the study directory."""
    plan = plan_study(args)
    with RunLock(plan.sdir, what="study"):  # one process per study: a second would rewrite its report
        check_study(plan)
        _run_seeds_and_report(plan, echo)
    return plan.sdir


def check_study(plan: StudyPlan) -> None:
    """Refuse, before any run, a call whose seeds would be reported as runs of another configuration than the ones
    already in its folder (other overrides, fewer steps than a seed ran, a schedule a longer run changes, a done
    seed of an edited experiment). Reads only: the lab checks every study before it runs any."""
    sdir, overrides, cfg, seeds = plan.sdir, plan.overrides, plan.cfg, plan.seeds
    try:
        earlier = json.loads((sdir / "study.json").read_text())
    except (OSError, ValueError):
        earlier = None  # a new study (or an unreadable file, rewritten when it runs)
    before = settings_of(earlier.get("overrides", [])) if isinstance(earlier, dict) else {}
    now = settings_of(overrides) if isinstance(earlier, dict) else {}
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if (reached := steps_reached(sdir)) > int(cfg.steps):  # a seed ran longer than this study asks
        changed.insert(0, "steps")
        before["steps"], now["steps"] = str(reached), str(cfg.steps)
    if changed:
        listed = ", ".join(f"{k}: {before.get(k, '(unset)')} -> {now.get(k, '(unset)')}" for k in changed)
        raise ConfigError(
            f"study {sdir} was run with other overrides ({listed}): its seeds would be reported as runs of this "
            "configuration; give the same overrides to grow it (more seeds, a larger steps, other log.*), or "
            "another out=DIR"
        )
    refuse_schedule_changing_extensions(sdir, seeds, cfg)
    refuse_done_seeds_of_another_config(sdir, seeds, overrides, int(cfg.steps))


def _run_seeds_and_report(plan: StudyPlan, echo: bool) -> None:
    study, overrides, seeds, jobs, launcher, cfg, sdir = (
        plan.study, plan.overrides, plan.seeds, plan.jobs, plan.launcher, plan.cfg, plan.sdir,
    )  # fmt: skip
    exp = str(cfg.exp)
    write_json(sdir / "study.json", {"exp": exp, "seeds": seeds, "overrides": overrides, "steps": int(cfg.steps)})

    todo = [s for s in seeds if not is_done(sdir / f"seed_{s}", int(cfg.steps))]  # a larger steps extends seeds
    if echo:
        print(f"study {sdir}: {len(seeds) - len(todo)} of {len(seeds)} seeds already done", file=sys.stderr)

    errors: dict[int, str] = {}  # e.g. a seed's run directory locked by another study's run
    bar = progress(total=len(todo), desc=f"study {sdir.name}", unit="seed", verbose=echo)
    slots = gpu_slots(jobs, visible_gpus() if one_device_per_run(cfg) else [])

    def finished(seed: int, code: int, t0: float, why: str = "") -> None:
        if code != 0:
            errors[seed] = why or last_error(sdir / "logs" / f"seed_{seed}.log") or f"exit {code}"
        if echo:
            s = read_summary(sdir / f"seed_{seed}") or {}
            what = f"error: {errors[seed]}" if code == 2 or why else s.get("status", "no summary")
            bar.write(f"  seed {seed}: {what} ({time.time() - t0:.0f} s, exit {code})", file=sys.stderr)
        bar.update(1)

    def one(seed: int) -> None:
        t0, gpu = time.time(), slots.get()
        try:
            log = sdir / "logs" / f"seed_{seed}.log"
            code = run_one(overrides, seed, sdir / f"seed_{seed}", sdir.name, log, jobs, gpu)
        finally:
            slots.put(gpu)
        finished(seed, code, t0)

    try:
        with bar:
            if launcher == "submitit" and todo:
                t0 = time.time()
                for seed, code, why in launch_submitit(study, overrides, todo, sdir):
                    finished(seed, code, t0, why)
            else:
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    try:
                        list(pool.map(one, todo))
                    except KeyboardInterrupt:
                        pool.shutdown(wait=True, cancel_futures=True)  # seeds not started yet stay unstarted
                        raise
    except KeyboardInterrupt:  # Ctrl-C reaches the seeds' runs too (one process group): report what finished
        write_report(sdir, seeds, None, errors, int(cfg.steps))
        raise
    repro = None
    if str(study.get("reproducible", "false")).lower() in ("1", "true", "yes"):
        repro = reproducibility_check(overrides, seeds[0], sdir, echo, int(cfg.steps))
    write_report(sdir, seeds, repro, errors, int(cfg.steps))
    if "wandb" in list(cfg.logger):  # the study's plots beside its runs (the same wandb group)
        from gan_lightning.wandb_utils import log_study_plots

        log_study_plots(sdir, exp, [sdir / "curves.png", sdir / "finals.png"])


def reproducibility_check(
    overrides: list[str], seed: int, sdir: Path, echo: bool = True, steps: int | None = None
) -> dict[str, Any]:
    """Run one seed twice from scratch and compare the final weights, at the study's ``steps`` (a grown study
    extends both runs the same way)."""
    dirs = [sdir / "reproducible" / name for name in ("a", "b")]
    for d in dirs:
        if not is_done(d, steps):
            run_one(overrides, seed, d, sdir.name, sdir / "logs" / f"reproducible_{d.name}.log")
    failed = [d.name for d in dirs if (read_summary(d) or {}).get("status") != "completed"]
    if failed:  # the report is written all the same, saying why there is no verdict
        why = f"run {', '.join(failed)} of seed {seed} did not complete (see logs/reproducible_*.log)"
        if echo:
            print(f"reproducibility: {why}", file=sys.stderr)
        return {"seed": seed, "bitwise_equal": None, "error": why}
    states = [
        torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"] for d in dirs
    ]
    summaries = [read_summary(d) or {} for d in dirs]
    max_diff = max(
        (float((a.double() - b.double()).abs().max()) if a.is_floating_point() else float((a != b).any()))
        for a, b in zip(states[0].values(), states[1].values())
    )
    bitwise = all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values()))
    result = {
        "seed": seed,
        "steps_done": summaries[0].get("steps_done"),
        "bitwise_equal": bitwise,
        "max_abs_difference": max_diff,
        "weights_sha1": [s.get("weights_sha1") for s in summaries],
        "device": summaries[0].get("device"),
    }
    if echo:
        verdict = "bitwise equal" if bitwise else f"not bitwise equal (max |diff| {max_diff:.3g})"
        print(f"reproducibility: seed {seed} twice -> {verdict}", file=sys.stderr)
    return result


# ----------------------------------------------------------------------------- aggregates
def bootstrap_ci(
    values: list[float], level: float = 0.95, resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """BCa bootstrap interval of the mean (``scipy.stats.bootstrap``; Efron 1987): bias- and
    skew-corrected, so better than the percentile interval at the few seeds a study has. Where BCa is
    undefined (fewer than 3 values, or all equal) the percentile interval is given."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or float(x.min()) == float(x.max()):
        return float(x.mean()), float(x.mean())

    def interval(method: str) -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's "degenerate distribution" warning: handled below
            res = stats.bootstrap(
                (x,),
                np.mean,
                confidence_level=level,
                n_resamples=resamples,
                method=method,
                rng=np.random.default_rng(seed),
            )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    lo, hi = interval("BCa" if len(x) >= 3 else "percentile")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = interval("percentile")
    return lo, hi


def aggregate(values: list[float]) -> dict[str, float | None]:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return {"n": 0}
    lo, hi = bootstrap_ci(list(x)) if len(x) > 1 else (None, None)  # one value: no spread, no interval
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if len(x) > 1 else None,
        "median": float(np.median(x)),
        "min": float(x.min()),
        "max": float(x.max()),
        "ci95_low": lo,
        "ci95_high": hi,
    }


def collect(sdir: Path, seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        s = read_summary(sdir / f"seed_{seed}")
        rows.append({"seed": seed, "summary": s})
    return rows


def write_report(
    sdir: Path,
    seeds: list[int],
    repro: dict[str, Any] | None = None,
    errors: dict[int, str] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """report.json/.md and plots; ``errors``: this invocation's error of a seed whose run failed. A seed
    completed below the study's ``steps`` (its extension failed) is listed with status 'short' and left
    out of the figures."""
    rows = collect(sdir, seeds)
    for r in rows:
        s = r["summary"]
        if s and s.get("status") == "completed" and steps is not None and s.get("steps_done", 0) < steps:
            r["summary"] = {**s, "status": "short"}
    done = [r for r in rows if r["summary"] and r["summary"].get("status") == "completed"]
    keys = sorted(  # a value written as null was non-finite (an infinite KL): the key stays, with no finite value
        {
            k
            for r in done
            for k, v in r["summary"]["final"].items()
            if k != "step" and (v is None or isinstance(v, float | int))
        }
    )
    per_seed = []
    for r in rows:
        s = r["summary"] or {}
        per_seed.append(
            {
                "seed": r["seed"],
                "status": s.get("status", "missing"),
                "steps_done": s.get("steps_done"),
                "final": {k: v for k, v in s.get("final", {}).items() if k != "step"},
                "best": s.get("best", {}),
                "wall_s": s.get("wall_s"),
                "g_iters_per_s": s.get("g_iters_per_s"),
                "device": s.get("device"),
                "weights_sha1": s.get("weights_sha1"),
                **({"error": errors[r["seed"]]} if errors and r["seed"] in errors else {}),
            }
        )
    report: dict[str, Any] = {
        "study": str(sdir),
        "seeds": seeds,
        "completed": [r["seed"] for r in done],
        "per_seed": per_seed,
        "final": {k: aggregate([r["summary"]["final"].get(k) for r in done]) for k in keys},
        "best": {
            k: aggregate([r["summary"]["best"][k]["value"] for r in done if k in r["summary"]["best"]]) for k in keys
        },
        "wall_s": aggregate([r["summary"].get("wall_s") for r in done]),
        "g_iters_per_s": aggregate([r["summary"].get("g_iters_per_s") for r in done]),
    }
    if repro is None:  # a call without reproducible=true keeps the verdict of an earlier one at these steps
        repro = earlier_reproducibility(sdir, steps)
    if repro is not None:
        report["reproducibility"] = repro
    write_json(sdir / "report.json", report)
    write_text(sdir / "report.md", report_markdown(report))
    try:
        plot_study(sdir, report["completed"], keys)
    except Exception as e:  # plots are a convenience; the numbers are already written
        print(f"[study] plots skipped: {e}", file=sys.stderr)
    return report


def earlier_reproducibility(sdir: Path, steps: int | None) -> dict[str, Any] | None:
    """The reproducibility verdict of the study's last report, if it was reached at ``steps``."""
    try:
        repro = json.loads((sdir / "report.json").read_text()).get("reproducibility")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(repro, dict) or (steps is not None and repro.get("steps_done") != steps):
        return None
    return repro


def _number(value: Any, digits: int = 4) -> str:
    """A table cell: the value to ``digits`` digits, '-' where there is none (missing or non-finite, or the
    spread of one value)."""
    return "-" if value is None else f"{value:.{digits}g}"


def _interval(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


def report_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Study {report['study']}", "", f"Seeds {report['seeds']}; completed {report['completed']}.", ""]
    lines += [
        "| metric (final) | mean | std | median | min | max | 95% CI of the mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, a in report["final"].items():
        done = len(report["completed"])
        label = key if a.get("n", 0) >= done else f"{key} ({a.get('n', 0)} of {done} seeds finite)"
        if not a.get("n"):  # every seed's value non-finite: the worst outcome, not a missing measure
            lines.append(f"| {label} | - | - | - | - | - | - |")
        else:
            lines.append(
                f"| {label} | {a['mean']:.4g} | {_number(a['std'], 3)} | {a['median']:.4g} | {a['min']:.4g} | "
                f"{a['max']:.4g} | {_interval(a['ci95_low'], a['ci95_high'])} |"
            )
    w, t = report["wall_s"], report["g_iters_per_s"]
    if w.get("n"):
        lines += [
            "",
            f"Wall time per run: mean {w['mean']:.1f} s (min {w['min']:.1f}, max {w['max']:.1f}); "
            f"throughput {t.get('mean', float('nan')):.1f} G steps/s.",
        ]
    lines += [
        "",
        "| " + " | ".join(["seed", "status", *report["final"]]) + " |",
        "|---|---|" + "---|" * len(report["final"]),
    ]
    for r in report["per_seed"]:
        vals = " | ".join(_number(r["final"].get(k)) for k in report["final"])
        lines.append(f"| {r['seed']} | {r['status']} | {vals} |")
    if "reproducibility" in report and report["reproducibility"].get("error"):
        lines += ["", f"Reproducibility: no verdict: {report['reproducibility']['error']}."]
    elif "reproducibility" in report:
        rp = report["reproducibility"]
        verdict = "bitwise equal" if rp["bitwise_equal"] else f"max |diff| {rp['max_abs_difference']:.3g}"
        lines += [
            "",
            f"Reproducibility: seed {rp['seed']} run twice on {rp['device']}: {verdict}; "
            f"weights SHA-1 {rp['weights_sha1'][0]} / {rp['weights_sha1'][1]}.",
        ]
    return "\n".join(lines) + "\n"


def plot_study(sdir: Path, seeds: list[int], keys: list[str]) -> None:
    """curves.png: each metric over steps, mean with a min-max band across ``seeds`` (the completed ones);
    finals.png: a strip plot with a box of each metric's final values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {s: read_curves(sdir / f"seed_{s}") for s in seeds}
    plot_keys = [k for k in keys if not k.startswith("raw/") and not k.startswith("time/")][:6] or keys[:6]
    loss_keys = [k for k in ("loss/d", "loss/g") if any(k in c for c in curves.values())]
    panels = loss_keys + plot_keys
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
        for ax, key in zip(axes[0], panels):
            series = [c[key] for c in curves.values() if key in c]
            common = sorted(set.intersection(*(set(xs) for xs, _ in series))) if series else []
            for xs, ys in series:
                ax.plot(xs, ys, color="tab:blue", alpha=0.25, lw=0.8)
            if common:
                table = np.array([[dict(zip(xs, ys))[x] for x in common] for xs, ys in series])
                ax.fill_between(common, table.min(0), table.max(0), color="tab:blue", alpha=0.15)
                ax.plot(common, table.mean(0), color="tab:blue", lw=2, label=f"mean of {len(series)} seeds")
            ax.set_title(key)
            ax.set_xlabel("G step")
            ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, sdir / "curves.png", dpi=100)
        plt.close(fig)
    finals = [r for r in json.loads((sdir / "report.json").read_text())["per_seed"] if r["seed"] in seeds]
    if plot_keys:
        fig, axes = plt.subplots(1, len(plot_keys), figsize=(2.6 * len(plot_keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], plot_keys):
            vals = [r["final"][key] for r in finals if key in r["final"] and r["final"][key] is not None]
            finite = [v for v in vals if math.isfinite(v)]  # e.g. a KL of inf when a mode is never hit
            if finite:
                ax.boxplot(finite, widths=0.5)
                jittered = np.ones(len(finite)) + np.linspace(-0.08, 0.08, len(finite))
                ax.scatter(jittered, finite, color="tab:red", s=14, zorder=3)
            off = len(vals) - len(finite)
            ax.set_title(key + (f"\n({off} seed(s) non-finite)" if off else ""), fontsize=9)
            ax.set_xticks([])
        fig.tight_layout()
        save_figure(fig, sdir / "finals.png", dpi=100)
        plt.close(fig)


# ----------------------------------------------------------------------------- compare
def read_report(sdir: Path) -> dict[str, Any]:
    """A study's report.json, or a ConfigError naming the file and what to do."""
    path = sdir / "report.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: give a study directory (gan-lightning study ... out=DIR)")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); run the study again to rewrite its report") from e
    if not isinstance(report, dict) or "final" not in report or "per_seed" not in report:
        raise ConfigError(f"{path} is not a study report (it needs 'final' and 'per_seed'); run the study again")
    return report


def compare_studies(
    a: str | Path, b: str | Path, metrics: list[str] | None = None, alpha: float = 0.05
) -> dict[str, Any]:
    """Welch's t and Mann-Whitney U on the final values of two studies, with effect sizes; the
    p-values are adjusted for the number of metrics compared (Benjamini-Hochberg)."""
    from scipy import stats

    reports = [read_report(Path(p)) for p in (a, b)]
    completed = [[r for r in rep["per_seed"] if r["status"] == "completed"] for rep in reports]
    finals = [  # a seed's non-finite value is written as null: counted apart (see below), not tested
        {k: [r["final"][k] for r in done if r["final"].get(k) is not None] for k in rep["final"]}
        for rep, done in zip(reports, completed)
    ]
    lacking = [
        {k: sum(r["final"].get(k) is None for r in done) for k in rep["final"]} for rep, done in zip(reports, completed)
    ]
    shared = sorted(set(finals[0]) & set(finals[1]))
    unknown = [k for k in metrics or [] if k not in shared]
    if unknown:
        close = close_matches(unknown[0], shared)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"bad value for '--metrics': '{unknown[0]}' is not a final metric of both studies; {hint}"
            f"they share: {', '.join(shared) or 'none'}"
        )
    if not (0 < alpha < 1):
        raise ConfigError(f"bad value for '--alpha': a false discovery rate in (0, 1), got {alpha}")
    keys = metrics or shared
    out: dict[str, Any] = {
        "a": str(a),
        "b": str(b),
        "alpha": alpha,
        "multiple_testing": "Benjamini-Hochberg false discovery rate across the metrics compared",
        "metrics": {},
        "values": {},  # each metric's final values in A and in B
    }
    for key in keys:
        x, y = (np.asarray(f.get(key, []), dtype=np.float64) for f in finals)
        na, nb = (miss.get(key, 0) for miss in lacking)
        if na or nb:  # an infinite or undefined value is a seed's outcome: testing the rest would favour that study
            out["metrics"][key] = {
                "note": f"not compared: {na} of {na + len(x)} completed seeds of A and {nb} of {nb + len(y)} of B have "
                "no finite value (infinite or undefined), and leaving them out would favour the study they fail in",
                "non_finite_a": na,
                "non_finite_b": nb,
            }
            continue
        if len(x) < 2 or len(y) < 2:
            out["metrics"][key] = {"note": "needs at least 2 completed seeds in each study"}
            continue
        welch = stats.ttest_ind(x, y, equal_var=False)
        mwu = rank_test(x, y)
        # Cohen's d: the variances pooled with weights n - 1 (the studies may have different numbers of seeds)
        pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
        gap = float(x.mean() - y.mean())
        d = gap / pooled if pooled > 0 else (math.copysign(math.inf, gap) if gap else 0.0)  # constant studies
        out["metrics"][key] = {
            "mean_a": float(x.mean()),
            "mean_b": float(y.mean()),
            "n_a": len(x),
            "n_b": len(y),
            "welch_t": float(welch.statistic),
            "welch_p": float(welch.pvalue),
            "mann_whitney_u": float(mwu.statistic),
            "mann_whitney_p": float(mwu.pvalue),
            "mann_whitney_min_p": rank_test_min_p(len(x), len(y)),
            "cohens_d": d,  # difference of means over the pooled std
            "prob_a_greater": float(mwu.statistic / (len(x) * len(y))),  # common-language effect size
        }
        out["values"][key] = [x.tolist(), y.tolist()]
    control_false_discoveries(out["metrics"], alpha)
    return out


def rank_test(x: np.ndarray, y: np.ndarray) -> Any:
    """Two-sided Mann-Whitney U test, exact by permutation up to 10 seeds a study (ties included, where scipy's
    default falls back to the normal approximation, whose p-values can be smaller than the exact test allows)."""
    from scipy import stats

    if len(x) <= 10 and len(y) <= 10:  # C(20, 10) = 184,756 splits at most: all of them
        method = stats.PermutationMethod(n_resamples=math.comb(len(x) + len(y), len(x)))
        return stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    return stats.mannwhitneyu(x, y, alternative="two-sided")


def rank_test_min_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney test can give for samples of n_a and n_b
    (the samples perfectly separated): 2 / C(n_a + n_b, n_a), e.g. 0.1 for 3 and 3 seeds."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def control_false_discoveries(metrics: dict[str, dict[str, Any]], alpha: float) -> None:
    """Benjamini-Hochberg across the compared metrics (``scipy.stats.false_discovery_control``):
    each test's adjusted p-value; a metric differs when both tests' adjusted p-values are below
    ``alpha``, so the expected share of false "differ" verdicts among them stays at most ``alpha``.
    Where the rank test cannot reach ``alpha`` at these sample sizes (3 and 3 seeds: p >= 0.1), it
    cannot decide, and the verdict rests on Welch's t alone (``mann_whitney_can_decide`` false)."""
    from scipy import stats

    tested = [k for k, m in metrics.items() if "welch_p" in m]
    for test in ("welch_p", "mann_whitney_p"):
        # a p-value that is not a number (both studies constant, e.g. all modes covered) takes no part
        finite = [k for k in tested if math.isfinite(metrics[k][test])]
        adjusted = stats.false_discovery_control([metrics[k][test] for k in finite], method="bh") if finite else []
        for key in tested:
            metrics[key][test + "_adjusted"] = math.nan
        for key, value in zip(finite, adjusted):
            metrics[key][test + "_adjusted"] = float(value)
    for key in tested:
        m = metrics[key]
        m["mann_whitney_can_decide"] = m["mann_whitney_min_p"] < alpha
        rank_agrees = m["mann_whitney_p_adjusted"] < alpha or not m["mann_whitney_can_decide"]
        m["differ"] = bool(m["welch_p_adjusted"] < alpha and rank_agrees)
