"""The protocol of "Are GANs Created Equal?" (Lucic et al. 2018, NeurIPS) as one command.

``gan-lightning study protocol=lucic [models=mm,ns,lsgan,wgan,wgan_gp,dragan] [budget=K] [seeds=0]
[steps=N] [out=DIR] [jobs=J] [search_seed=0] [batch_sizes=64] [k=v ...]``

Every loss of their table on one architecture (DCGAN nets on Fashion-MNIST 32x32,
``experiments/lucic_fashion.yaml``); for each loss ``budget`` configurations drawn at random from
their wide hyperparameter ranges, each trained for every seed of ``seeds`` (a seed list as for
``study``: ``0-4``, ``1,3``) as one seeded study (``gan_lightning.study``). The i-th configuration of
a loss depends only on (search_seed, loss, i): a larger budget keeps the configurations already
trained, and a second call runs only the runs that are missing (a diverged run is an outcome, not
rerun). Then, per loss, the minimum FID over b configurations drawn without replacement from the K
(b = 1..K: its mean and 95% interval, the budget plot of the paper) and the best FID beside the
paper's Fashion-MNIST row, written as protocol.json, protocol.md and budget_curve.png.
``jobs=J`` (and the other keys of ``study``) go to each configuration's study: J of its seeds at once.

The FID is the runs' own final ``fid``: in the domain classifier's feature space by default (what a
CPU affords); the paper's protocol is Inception features, 10,000 samples against the test split:
``metrics.features=inception metrics.n=10000 metrics.ref_split=test`` (the last two are this
experiment's defaults). protocol.md says plainly where the protocol differs from the paper's.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from gan_lightning.files import save_figure, write_json, write_text
from gan_lightning.registry import ConfigError
from gan_lightning.rundir import RunLock, read_summary
from gan_lightning.study import STUDY_KEYS, check_study, parse_seeds, plan_study, run_study

PROTOCOLS = ("lucic",)
EXPERIMENT = "lucic_fashion"
PAPER = "Lucic, Kurach, Michalski, Gelly, Bousquet: Are GANs Created Equal? A Large-Scale Study (NeurIPS 2018)"
# The ranges are the "wide" ranges (phase 1: 100 configurations per loss, one run each) of the
# authors' code, google/compare_gan at its 2018 release, compare_gan/src/params.py and
# generate_tasks_lib.py (read for the facts, not copied).
RANGES_SOURCE = "the wide ranges of the authors' code (google/compare_gan, 2018: compare_gan/src/params.py)"
PAPER_STEPS = 15625  # 20 epochs of 50,000 images at batch 64 (generate_tasks_lib.py)
PAPER_BUDGET = 100  # configurations per loss in their wide search (generate_tasks_lib.py)
PAPER_N = 10000
BETA2 = 0.999  # not searched by the authors' code: TensorFlow's Adam default. A range for it is unconfirmed.


@dataclass(frozen=True)
class Range:
    """One hyperparameter of the search: ``log`` (log-uniform on [low, high]), ``uniform`` (on
    [low, high)), ``uniform_open_low`` (on (low, high]) or ``choice`` (one of ``choices``)."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()
    note: str = ""

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "log":
            return float(10.0 ** rng.uniform(math.log10(self.low), math.log10(self.high)))
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "uniform_open_low":  # (low, high]: high - U[0, high - low)
            return float(self.high - rng.uniform(0.0, self.high - self.low))
        return self.choices[int(rng.integers(len(self.choices)))]

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(str(c).lower() for c in self.choices) + "}"
        lo, hi = f"{self.low:g}", f"{self.high:g}"
        if self.kind == "log":
            return f"log-uniform [{lo}, {hi}]"
        return f"uniform [{lo}, {hi})" if self.kind == "uniform" else f"uniform ({lo}, {hi}]"


# Adam for every loss, the same learning rate for G and D, beta2 fixed (authors' code).
LR = Range("lr", "log", 1e-5, 1e-2, note="optim.lr_g = optim.lr_d")
# [0, 1): torch's Adam refuses beta1 = 1 (its bias correction divides by 1 - beta1^t)
BETA1 = Range("beta1", "uniform", 0.0, 1.0, note=f"optim.betas[0]; beta2 = {BETA2} fixed")
N_DISC = Range("n_disc", "choice", choices=(1, 5), note="model.n_critic: D steps per G step")
D_BATCHNORM = Range("d_batchnorm", "choice", choices=(True, False), note="nets.d_norm = batch | none")
CLIP = Range("clip", "log", 1e-3, 1.0, note="model.clip (WGAN weight clipping)")
LAMBDA = Range("penalty", "log", 1e-1, 1e2, note="model.penalty.weight (lambda)")
# BEGAN: the authors' gamma range is [0, 1]; this project's BEGAN needs gamma > 0, hence (0, 1]
GAMMA = Range("gamma", "uniform_open_low", 0.0, 1.0, note="model.gamma (diversity ratio)")
LAMBDA_K = Range("lambda_k", "log", 1e-4, 1e-2, note="model.lambda_k (gain of k_t)")
COMMON = (LR, BETA1, N_DISC)


@dataclass(frozen=True)
class Loss:
    """One row of the paper's table: its name there, how this project trains it, what is searched,
    and its best Fashion-MNIST FID in the paper (None: not confirmed to us)."""

    label: str
    overrides: tuple[str, ...]
    ranges: tuple[Range, ...]
    published: float | None
    note: str = ""


# The same DCGAN nets for all (BEGAN's D is an autoencoder of DCGAN blocks: gan_lightning/models/energy.py).
# BatchNorm in D is searched as in the paper except beside a per-sample penalty (WGAN-GP, DRAGAN),
# where this project refuses it (Gulrajani et al. 2017; the authors' narrower second search also
# fixed it off for both).
LOSSES: dict[str, Loss] = {
    "mm": Loss("MM GAN", ("model=dcgan", "model.loss=minimax"), (*COMMON, D_BATCHNORM), 29.6),
    "ns": Loss("NS GAN", ("model=dcgan", "model.loss=nonsaturating"), (*COMMON, D_BATCHNORM), 26.5),
    "lsgan": Loss("LSGAN", ("model=lsgan",), (*COMMON, D_BATCHNORM), 30.7),
    "wgan": Loss("WGAN", ("model=wgan",), (*COMMON, D_BATCHNORM, CLIP), 21.5, "Adam, as for every loss"),
    "wgan_gp": Loss("WGAN GP", ("model=wgan_gp", "nets.d_norm=none"), (*COMMON, LAMBDA), 24.5),
    "dragan": Loss("DRAGAN", ("model=dragan", "nets.d_norm=none"), (*COMMON, LAMBDA), 27.7),
    "began": Loss("BEGAN", ("model=began",), (*COMMON, GAMMA, LAMBDA_K), None, "paper's value not confirmed"),
}
DEFAULT_MODELS = ("mm", "ns", "lsgan", "wgan", "wgan_gp", "dragan")  # BEGAN on request: models=...,began
PUBLISHED_SOURCE = (
    "Lucic et al. 2018, Table 2, Fashion-MNIST row (best FID; Inception features, 10,000 samples against "
    "the test split), as quoted by our issue tracker"
)
# every run of the protocol: the shared experiment, Adam, z of 64 (the authors' code)
BASE_OVERRIDES = (f"exp={EXPERIMENT}", "optim.name=adam", "model.z_dim=64")
# keys each configuration sets: a user's value would silently undo the search
SET_BY_PROTOCOL = {
    "exp": "the protocol trains experiments/lucic_fashion.yaml",
    "model": "models=mm,ns,... picks the losses",
    "model.loss": "models=mm,ns,... picks the losses",
    "model.name": "models=mm,ns,... picks the losses",
    "optim.name": "the protocol trains with Adam",
    "optim.lr_g": "the search draws the learning rate",
    "optim.lr_d": "the search draws the learning rate",
    "optim.betas": "the search draws beta1",
    "model.n_critic": "the search draws n_disc",
    "nets.d_norm": "the search draws D's BatchNorm",
    "model.clip": "the search draws WGAN's clipping",
    "model.penalty.weight": "the search draws lambda",
    "model.penalty.name": "the loss sets its penalty",
    "model.gamma": "the search draws BEGAN's gamma",
    "model.lambda_k": "the search draws BEGAN's lambda_k",
    "data.batch_size": "use batch_sizes=16,32,64 to search it, or batch_sizes=32 to fix it",
    "seed": "use seeds=0-4",
}
OPTIONS = {
    "protocol": "lucic",
    "models": ",".join(DEFAULT_MODELS),
    "budget": "10",
    "seeds": "0",
    "out": "",
    "search_seed": "0",
    "batch_sizes": "64",  # the authors' code trains at batch 64; batch_sizes=16,32,64,128,256 searches it
}
# the settings a run's config.yaml must share with the protocol's, or its FID is another quantity
COMPARED = ("steps", "metrics.features", "metrics.n", "metrics.ref_split", "metrics.n_ref", "data.subset")
SETTLED = ("completed", "diverged")  # outcomes; anything else is run (again)
LEVEL = Fraction(95, 100)


@dataclass
class Settings:
    models: list[str]
    budget: int
    seeds: list[int]
    search_seed: int
    batch_sizes: list[int]
    overrides: list[str]  # the user's training overrides, for every run
    study_keys: list[str] = field(default_factory=list)  # jobs=, launcher=, ... for the study runner
    out: Path = Path()


# ----------------------------------------------------------------------------- arguments
def _integer(text: str, what: str, minimum: int, example: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"bad value for '{what}': '{text}'; a whole number >= {minimum}, e.g. {example}")
    return value


def parse_args(args: list[str]) -> Settings:
    """The protocol's options, the study runner's keys and the user's training overrides; a bad
    option or an override of a key the search sets is a ConfigError naming the fix."""
    opts = dict(OPTIONS)
    overrides: list[str] = []
    study_keys: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in opts:
            opts[key] = value
        elif sep and key in STUDY_KEYS:  # jobs=, launcher=, reproducible=, ...
            study_keys.append(arg)
        elif sep and key in SET_BY_PROTOCOL:
            why = SET_BY_PROTOCOL[key]
            raise ConfigError(
                f"'{key}' is set by protocol={opts['protocol']} for each configuration: drop {arg} ({why})"
            )
        else:
            overrides.append(arg)
    if opts["protocol"] not in PROTOCOLS:
        raise ConfigError(f"bad value for 'protocol': '{opts['protocol']}'; known: {', '.join(PROTOCOLS)}")
    models = [m.strip() for m in opts["models"].split(",") if m.strip()]
    unknown = [m for m in models if m not in LOSSES]
    if unknown or not models:
        raise ConfigError(
            f"bad value for 'models': {', '.join(unknown) or 'empty'}; choose from {', '.join(LOSSES)} "
            f"(e.g. models={','.join(DEFAULT_MODELS)})"
        )
    try:
        sizes = [int(b) for b in opts["batch_sizes"].split(",") if b.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"bad value for 'batch_sizes': '{opts['batch_sizes']}'; e.g. batch_sizes=64 or 16,32,64")
    settings = Settings(
        models=list(dict.fromkeys(models)),
        budget=_integer(opts["budget"], "budget", 1, "budget=10 configurations per loss"),
        seeds=parse_seeds(opts["seeds"]),
        search_seed=_integer(opts["search_seed"], "search_seed", 0, "search_seed=0"),
        batch_sizes=list(dict.fromkeys(sizes)),
        overrides=overrides,
        study_keys=study_keys,
    )
    settings.out = Path(opts["out"]) if opts["out"] else default_out(settings)
    return settings


def default_out(s: Settings) -> Path:
    """runs/protocols/lucic-<hash>: the hash of what makes a run's FID (the training overrides, the
    search's seed and batch sizes), not of models, budget or seeds, so a larger budget, another loss
    or more seeds land beside the runs already there."""
    what = " ".join([*sorted(s.overrides), f"search_seed={s.search_seed}", f"batch_sizes={s.batch_sizes}"])
    return Path("runs") / "protocols" / f"lucic-{hashlib.sha1(what.encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------------------- the search
def draw_config(loss: str, index: int, search_seed: int = 0, batch_sizes: Sequence[int] = (64,)) -> dict[str, Any]:
    """The ``index``-th configuration of ``loss``: its own generator, seeded by (search_seed, loss,
    index), so it does not depend on the budget or on the other losses."""
    rng = np.random.default_rng([search_seed, zlib.crc32(loss.encode()), index])
    params = {r.name: r.draw(rng) for r in LOSSES[loss].ranges}
    params["batch_size"] = int(batch_sizes[int(rng.integers(len(batch_sizes)))])
    return params


def draw_configs(loss: str, budget: int, search_seed: int = 0, batch_sizes: Sequence[int] = (64,)) -> list[dict]:
    if budget < 1:
        raise ConfigError(f"bad value for 'budget': {budget}; at least 1 configuration per loss, e.g. budget=10")
    return [draw_config(loss, i, search_seed, batch_sizes) for i in range(budget)]


def config_overrides(loss: str, params: dict[str, Any]) -> list[str]:
    """The ``key=value`` overrides that train ``params`` with ``loss``."""
    out = [*BASE_OVERRIDES, *LOSSES[loss].overrides]
    keys = {
        "n_disc": "model.n_critic",
        "clip": "model.clip",
        "penalty": "model.penalty.weight",
        "gamma": "model.gamma",
        "lambda_k": "model.lambda_k",
        "batch_size": "data.batch_size",
    }
    for name, value in params.items():
        if name == "lr":
            out += [f"optim.lr_g={value!r}", f"optim.lr_d={value!r}"]
        elif name == "beta1":
            out.append(f"optim.betas=[{value!r},{BETA2!r}]")
        elif name == "d_batchnorm":
            out.append(f"nets.d_norm={'batch' if value else 'none'}")
        else:
            out.append(f"{keys[name]}={value!r}")
    return out


# ----------------------------------------------------------------------------- min FID against the budget
def min_distribution(values: Sequence[float], b: int) -> list[tuple[float, Fraction]]:
    """The exact law of the minimum of ``b`` values drawn without replacement from the K ``values``:
    with v sorted ascending, the minimum is v_(i) (i from 1) with probability C(K-i, b-1) / C(K, b)
    (the subsets whose smallest member is the i-th, among all subsets of b). Ties are distinct
    positions, so equal values simply add up."""
    k = len(values)
    if not 1 <= b <= k:
        raise ValueError(f"budget {b} outside 1..{k}")
    v = sorted(values)
    total = math.comb(k, b)
    return [(v[i - 1], Fraction(math.comb(k - i, b - 1), total)) for i in range(1, k - b + 2)]


def _quantile(dist: list[tuple[float, Fraction]], q: Fraction) -> float:
    """The smallest value whose cumulative probability reaches q (the inverted CDF)."""
    cum = Fraction(0)
    for value, p in dist:
        cum += p
        if cum >= q:
            return value
    return dist[-1][0]


def budget_curve(values: Sequence[float], level: Fraction = LEVEL) -> list[dict[str, Any]]:
    """For each budget b = 1..K: the mean, median and central ``level`` interval of the minimum
    FID over b configurations drawn without replacement from the K trained ones. Exact: the
    curve that resampling subsets estimates (their budget plot), from ``min_distribution``. A
    diverged configuration has FID +inf; the mean is +inf while an all-diverged draw is possible."""
    tail = (1 - level) / 2
    curve = []
    for b in range(1, len(values) + 1):
        dist = min_distribution(values, b)
        if any(math.isinf(x) for x, _ in dist):
            mean = math.inf
        else:
            mean = math.fsum(float(p) * x for x, p in dist)
        curve.append(
            {
                "budget": b,
                "mean": mean,
                "median": _quantile(dist, Fraction(1, 2)),
                "low": _quantile(dist, tail),
                "high": _quantile(dist, 1 - tail),
            }
        )
    return curve


# ----------------------------------------------------------------------------- runs
def config_dir(out: Path, loss: str, index: int) -> Path:
    return out / loss / f"config_{index:03d}"


def run_record(run_dir: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """One run as the protocol sees it: its state (completed, diverged, or what else it is) and its
    FID (+inf when diverged or non-finite). A settled run trained with other settings than
    ``expected`` is an error: its FID would be another quantity."""
    s = read_summary(run_dir)
    if s is None:
        return {"state": "missing", "fid": None}
    state = str(s.get("status", "missing"))
    if state == "completed" and s.get("steps_done", 0) < s.get("steps", 1):
        state = "interrupted"
    record: dict[str, Any] = {"state": state, "fid": None, "wall_s": s.get("wall_s"), "device": s.get("device")}
    if state in SETTLED:
        _check_settings(run_dir, expected)
        fid = (s.get("final") or {}).get("fid") if state == "completed" else None
        record["fid"] = float(fid) if isinstance(fid, int | float) and math.isfinite(fid) else math.inf
    return record


def _check_settings(run_dir: Path, expected: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    cfg = OmegaConf.load(path)
    differ = [f"{k}={OmegaConf.select(cfg, k)} (now {v})" for k, v in expected.items() if OmegaConf.select(cfg, k) != v]
    if differ:
        raise ConfigError(
            f"{run_dir} was trained with other settings: {', '.join(differ)}; use the same settings, another "
            "out=DIR, or no out= at all (then each setting gets a directory of its own)"
        )


def _expected(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return {k: OmegaConf.select(cfg, k) for k in COMPARED}


def run_protocol(args: list[str], echo: bool = True) -> Path:
    """Run (or resume) the protocol and write protocol.json, protocol.md and budget_curve.png;
    returns its directory."""
    from gan_lightning.config import load_config

    s = parse_args(args)
    configs = {loss: draw_configs(loss, s.budget, s.search_seed, s.batch_sizes) for loss in s.models}
    cfg = None
    for loss in s.models:  # every loss with the user's overrides, before anything runs
        cfg = load_config([*config_overrides(loss, configs[loss][0]), *s.overrides])
    if cfg is None or "fid" not in list(cfg.metrics.names):
        raise ConfigError("bad value for 'metrics.names': the protocol compares FIDs; keep fid in it")
    expected = _expected(cfg)
    t0 = time.time()
    with RunLock(s.out, what="protocol"):
        pending = []  # (what, its study's arguments): every run read and every study checked before any trains
        for loss in s.models:
            for i, params in enumerate(configs[loss]):
                cdir = config_dir(s.out, loss, i)
                todo = [seed for seed in s.seeds if run_record(cdir / f"seed_{seed}", expected)["state"] not in SETTLED]
                if not todo:
                    continue
                seeds = ",".join(str(x) for x in s.seeds)  # all: the study skips settled seeds, reports every one
                study = [*config_overrides(loss, params), *s.overrides, *s.study_keys, f"seeds={seeds}", f"out={cdir}"]
                check_study(plan_study(study))
                pending.append((f"{loss} configuration {i + 1}/{s.budget}, seeds {todo}", study))
        for what, study in pending:
            if echo:
                print(f"protocol: {what}", file=sys.stderr)
            run_study(study, echo=echo)
        result = collect(s, configs, expected, cfg, time.time() - t0)
        write_json(s.out / "protocol.json", result)
        write_text(s.out / "protocol.md", protocol_markdown(result))
        plot_budget(result, s.out / "budget_curve.png")
    return s.out


# ----------------------------------------------------------------------------- results
def collect(
    s: Settings, configs: dict[str, list[dict]], expected: dict[str, Any], cfg: Any, call_s: float
) -> dict[str, Any]:
    models: dict[str, Any] = {}
    devices: set[str] = set()
    run_wall = 0.0
    missing: list[str] = []
    for loss in s.models:
        rows = []
        for i, params in enumerate(configs[loss]):
            runs = []
            for seed in s.seeds:
                rec = run_record(config_dir(s.out, loss, i) / f"seed_{seed}", expected)
                runs.append({"seed": seed, **rec})
                if rec["state"] not in SETTLED:
                    missing.append(f"{loss} config {i} seed {seed}: {rec['state']}")
                if rec.get("device"):
                    devices.add(str(rec["device"]))
                run_wall += float(rec.get("wall_s") or 0.0)
            fids = [r["fid"] for r in runs if r["state"] in SETTLED]
            complete = len(fids) == len(s.seeds)
            finite = [f for f in fids if math.isfinite(f)]
            rows.append(
                {
                    "index": i,
                    "params": params,
                    "overrides": config_overrides(loss, params),
                    "runs": runs,
                    "complete": complete,
                    "fid": float(np.mean(fids)) if complete else None,  # +inf when a seed diverged
                    "fid_std": float(np.std(finite, ddof=1)) if complete and len(finite) == len(fids) > 1 else 0.0,
                    "diverged_runs": sum(r["state"] == "diverged" for r in runs),
                }
            )
        values = [r["fid"] for r in rows if r["complete"]]
        finite_rows = [r for r in rows if r["complete"] and math.isfinite(r["fid"])]
        best = min(finite_rows, key=lambda r: r["fid"]) if finite_rows else None
        run_fids = [x["fid"] for r in rows for x in r["runs"] if x["fid"] is not None and math.isfinite(x["fid"])]
        models[loss] = {
            "label": LOSSES[loss].label,
            "overrides": [*BASE_OVERRIDES, *LOSSES[loss].overrides],
            "search_space": {r.name: {"range": r.describe(), "sets": r.note} for r in LOSSES[loss].ranges},
            "configs_done": len(values),
            "diverged_runs": sum(r["diverged_runs"] for r in rows),
            "best": None
            if best is None
            else {"index": best["index"], "fid": best["fid"], "fid_std": best["fid_std"], "params": best["params"]},
            "best_run_fid": min(run_fids) if run_fids else None,
            "budget_curve": budget_curve(values),
            "published_fid": LOSSES[loss].published,
            "note": LOSSES[loss].note,
            "configs": rows,
        }
    differences = paper_differences(s, expected, str(cfg.metrics.features) if cfg is not None else "")
    return {
        "protocol": "lucic",
        "paper": PAPER,
        "experiment": EXPERIMENT,
        "settings": {
            "models": s.models,
            "budget": s.budget,
            "seeds": s.seeds,
            "search_seed": s.search_seed,
            "batch_sizes": s.batch_sizes,
            "overrides": s.overrides,
            "study_keys": s.study_keys,
            **expected,
            "beta2": BETA2,
            "ranges_source": RANGES_SOURCE,
        },
        "published_source": PUBLISHED_SOURCE,
        "models": models,
        "comparable_to_paper": not differences,
        "differences": differences,
        "missing": missing,
        "devices": sorted(devices),
        "wall_s": {"runs_total": round(run_wall, 1), "this_call": round(call_s, 1)},
    }


def paper_differences(s: Settings, expected: dict[str, Any], features: str) -> list[str]:
    """Where this protocol differs from the paper's, one plain sentence each."""
    out = []
    if features != "inception":
        out.append(
            f"FID in the {features} feature space (this project's domain classifier, 128-d), not Inception's: "
            "another scale, not comparable with the paper's numbers"
        )
    if expected["metrics.n"] != PAPER_N:
        out.append(f"{expected['metrics.n']} generated samples per FID, the paper {PAPER_N}")
    if expected["metrics.ref_split"] != "test":
        out.append(f"reference statistics of the {expected['metrics.ref_split']} split, the paper the test split")
    if expected["steps"] != PAPER_STEPS:
        out.append(f"{expected['steps']} G steps per run, the authors' code {PAPER_STEPS}")
    if expected.get("data.subset"):
        out.append(f"trained on the first {expected['data.subset']} training images only")
    if s.budget < PAPER_BUDGET:
        out.append(f"{s.budget} configurations per loss, the paper's wide search {PAPER_BUDGET}")
    if s.batch_sizes != [64]:
        out.append(f"batch size drawn from {s.batch_sizes}, the authors' code 64")
    # always: what this implementation does otherwise (the authors' code: google/compare_gan, 2018)
    out.append("Fashion-MNIST padded to 32x32; the authors' code trains it at 28x28")
    out.append(
        "BatchNorm in D is never drawn beside a gradient penalty (WGAN-GP, DRAGAN): this project refuses it; "
        "the authors' wide search drew it for them too"
    )
    out.append("every configuration is drawn at random; the authors' configuration 0 is the default one")
    out.append(
        "the best configuration is reported on the seeds it was chosen with (optimistic); the paper retrains "
        "the best configurations with 50 fresh seeds"
    )
    return out


def _fid(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    return "∞ (diverged)" if math.isinf(x) else f"{x:.{digits}f}"


def curve_budgets(k: int) -> list[int]:
    return sorted({b for b in (1, 2, 3, 5, 10, 20, 50, 100, k) if 1 <= b <= k})


def protocol_markdown(result: dict[str, Any]) -> str:
    st = result["settings"]
    models = result["models"]
    features = st["metrics.features"]
    seeds = st["seeds"]
    lines = [
        f"# {result['paper'].split(': ', 1)[1]} — the protocol on Fashion-MNIST 32x32",
        "",
        f"FID ({features} features, {st['metrics.n']} samples against the {st['metrics.ref_split']} split) "
        f"after {st['steps']} G steps; {st['budget']} random configurations per loss, each trained with "
        f"{len(seeds)} seed(s) {seeds}.",
        "",
    ]
    if result["differences"]:
        lines += ["**Not the paper's protocol**, so not comparable with its column:", ""]
        lines += [f"- {d}" for d in result["differences"]]
        lines.append("")
    lines += [
        "| loss | configurations done | diverged runs | best FID: configuration mean ± std over seeds | "
        "best single run | mean FID of one random configuration [95%] | Lucic et al. 2018 (Fashion-MNIST) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in models.values():
        best = m["best"]
        spread = f" ± {best['fid_std']:.1f}" if best is not None and len(seeds) > 1 else ""
        best_cell = "–" if best is None else f"{_fid(best['fid'])}{spread} (config {best['index']})"
        first = m["budget_curve"][0] if m["budget_curve"] else None
        one = "–" if first is None else f"{_fid(first['mean'])} [{_fid(first['low'])}, {_fid(first['high'])}]"
        paper = "– (not confirmed)" if m["published_fid"] is None else f"{m['published_fid']:.1f}"
        lines.append(
            f"| {m['label']} | {m['configs_done']} / {st['budget']} | {m['diverged_runs']} | {best_cell} | "
            f"{_fid(m['best_run_fid'])} | {one} | {paper} |"
        )
    lines += ["", f"Paper's column: {result['published_source']}.", ""]
    k_max = max((m["configs_done"] for m in models.values()), default=0)
    if k_max:
        lines += [
            "## Minimum FID against the budget",
            "",
            "Mean [95% interval] of the minimum FID over b configurations drawn without replacement from "
            "those trained (exact, from the law of the minimum of a random subset); see budget_curve.png.",
            "",
            "| budget b | " + " | ".join(m["label"] for m in models.values()) + " |",
            "| --- |" + " --- |" * len(models),
        ]
        for b in curve_budgets(k_max):
            cells = []
            for m in models.values():
                c = m["budget_curve"][b - 1] if b <= len(m["budget_curve"]) else None
                cells.append("–" if c is None else f"{_fid(c['mean'])} [{_fid(c['low'])}, {_fid(c['high'])}]")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Protocol", ""]
    each = "; ".join(f"{m['label']} `{' '.join(m['overrides'][len(BASE_OVERRIDES) :])}`" for m in models.values())
    lines.append(f"- Experiment `{result['experiment']}` (DCGAN nets, z 64, Adam); each loss: {each}.")
    lines.append(
        f"- Search: seed {st['search_seed']}, {result['settings']['ranges_source']}; beta2 = {st['beta2']} "
        f"(not searched there); batch size from {st['batch_sizes']}."
    )
    ranges: dict[str, str] = {}
    for m in models.values():
        for name, r in m["search_space"].items():
            ranges.setdefault(name, f"{name}: {r['range']} ({r['sets']})")
    lines += [f"  - {text}" for text in ranges.values()]
    lines.append(
        f"- {st['steps']} G steps per run; seeds {seeds}; budget {st['budget']} per loss; FID of the final "
        f"generator: {features} features, {st['metrics.n']} samples, reference {st['metrics.ref_split']} split "
        f"({st['metrics.n_ref']} images)."
    )
    lines.append(f"- Other overrides: {' '.join(st['overrides']) or 'none'}.")
    lines.append(f"- Device: {', '.join(result['devices']) or 'unknown'}.")
    wall = result["wall_s"]
    lines.append(
        f"- Wall time: {wall['runs_total']:.0f} s in the runs altogether; this call {wall['this_call']:.0f} s."
    )
    if result["missing"]:
        lines.append(f"- Missing ({len(result['missing'])}): " + "; ".join(result["missing"][:20]))
    return "\n".join(lines) + "\n"


def plot_budget(result: dict[str, Any], path: Path) -> Path | None:
    """budget_curve.png: per loss, the mean minimum FID against the budget with its 95% band."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {m["label"]: m["budget_curve"] for m in result["models"].values() if m["budget_curve"]}
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, curve in curves.items():
        xs = [c["budget"] for c in curve]

        def finite(key: str, curve: list[dict[str, Any]] = curve) -> list[float]:
            return [c[key] if math.isfinite(c[key]) else math.nan for c in curve]

        line = ax.plot(xs, finite("mean"), marker="o" if len(xs) <= 20 else None, ms=3, label=label)[0]
        ax.fill_between(xs, finite("low"), finite("high"), color=line.get_color(), alpha=0.15)
    st = result["settings"]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("budget: configurations tried")
    ax.set_ylabel(f"min FID ({st['metrics.features']} features)")
    ax.set_title(f"Lucic et al. 2018 protocol: {st['steps']} G steps, {len(st['seeds'])} seed(s)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return path


def protocol_command(args: list[str]) -> int:
    """``gan-lightning study protocol=...``: run, print the table, 1 when runs are missing."""
    out = run_protocol(args)
    print((out / "protocol.md").read_text())
    print(f"protocol directory: {out}")
    missing = json.loads((out / "protocol.json").read_text())["missing"]
    if missing:
        print(
            f"error: {len(missing)} run(s) did not finish ({'; '.join(missing[:5])}); run the same command again "
            "to retry them (finished runs are kept); their logs are in <out>/<loss>/config_*/logs/",
            file=sys.stderr,
        )
        return 1
    return 0
