"""The "Are GANs Created Equal?" protocol: the seeded search, the min-FID-against-budget curve, bad
input, and the whole command on a few tiny runs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from gan_lightning import cli
from gan_lightning.config import load_config
from gan_lightning.protocol import (
    DEFAULT_MODELS,
    LOSSES,
    budget_curve,
    config_overrides,
    default_out,
    draw_config,
    draw_configs,
    parse_args,
    protocol_markdown,
    run_protocol,
)
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import run

ALL_BATCHES = (16, 32, 64, 128, 256)


# ----------------------------------------------------------------------------- the search
def test_the_search_is_seeded_and_a_larger_budget_keeps_the_configurations_drawn() -> None:
    for loss in LOSSES:
        five = draw_configs(loss, 5, search_seed=3)
        assert five == draw_configs(loss, 5, search_seed=3)  # seeded
        assert draw_configs(loss, 12, search_seed=3)[:5] == five  # budget 5 -> 12 keeps the first five
        assert draw_configs(loss, 5, search_seed=4) != five
    assert draw_config("ns", 0)["lr"] != draw_config("mm", 0)["lr"]  # each loss a stream of its own


def _ks_uniform(x: np.ndarray, low: float, high: float) -> float:
    return float(stats.kstest(x, "uniform", args=(low, high - low)).pvalue)


# about 20 Kolmogorov-Smirnov tests below: at p > 1e-4 each, a false alarm somewhere has odds of 0.2%
P_MIN = 1e-4


def test_draws_stay_in_the_paper_ranges_and_log_ranges_are_log_uniform() -> None:
    n = 3000
    for loss, spec in LOSSES.items():
        draws = [draw_config(loss, i, search_seed=1, batch_sizes=ALL_BATCHES) for i in range(n)]
        cols = {k: np.array([d[k] for d in draws]) for k in draws[0]}
        assert set(cols) == {r.name for r in spec.ranges} | {"batch_size"}
        lr = cols["lr"]
        assert lr.min() >= 1e-5 and lr.max() <= 1e-2
        assert _ks_uniform(np.log10(lr), -5, -2) > P_MIN  # log10 of a log-uniform draw is uniform
        assert abs(np.log10(lr).mean() + 3.5) < 4 * (3 / math.sqrt(12)) / math.sqrt(n)
        assert _ks_uniform(lr, 1e-5, 1e-2) < 1e-6  # and the draw itself is not
        assert cols["beta1"].min() >= 0 and cols["beta1"].max() < 1 and _ks_uniform(cols["beta1"], 0, 1) > P_MIN
        assert set(cols["n_disc"].tolist()) == {1, 5} and abs((cols["n_disc"] == 5).mean() - 0.5) < 0.05
        assert set(cols["batch_size"].tolist()) == set(ALL_BATCHES)
        if "d_batchnorm" in cols:
            assert abs(cols["d_batchnorm"].mean() - 0.5) < 0.05
        if "clip" in cols:
            c = cols["clip"]
            assert c.min() >= 1e-3 and c.max() <= 1 and _ks_uniform(np.log10(c), -3, 0) > P_MIN
        if "penalty" in cols:
            p = cols["penalty"]
            assert p.min() >= 0.1 and p.max() <= 100 and _ks_uniform(np.log10(p), -1, 2) > P_MIN
        if "gamma" in cols:
            g = cols["gamma"]
            assert g.min() > 0 and g.max() <= 1 and _ks_uniform(g, 0, 1) > P_MIN
            k = cols["lambda_k"]
            assert k.min() >= 1e-4 and k.max() <= 1e-2 and _ks_uniform(np.log10(k), -4, -2) > P_MIN
    assert "gamma" in {r.name for r in LOSSES["began"].ranges} and "began" not in DEFAULT_MODELS
    assert {"penalty"} <= {r.name for r in LOSSES["wgan_gp"].ranges} and "clip" in {
        r.name for r in LOSSES["wgan"].ranges
    }


def test_each_drawn_value_reaches_the_config_exactly() -> None:
    for loss in LOSSES:
        for params in draw_configs(loss, 3, batch_sizes=ALL_BATCHES):
            cfg = load_config(config_overrides(loss, params))
            assert cfg.exp == "lucic_fashion" and cfg.optim.name == "adam" and cfg.model.z_dim == 64
            assert cfg.optim.lr_g == cfg.optim.lr_d == params["lr"]
            assert list(cfg.optim.betas) == [params["beta1"], 0.999]
            assert cfg.model.n_critic == params["n_disc"] and cfg.data.batch_size == params["batch_size"]
            assert (cfg.nets.g, cfg.nets.d, cfg.data.name, cfg.data.image_size) == (
                "dcgan",
                "dcgan",
                "fashion_mnist",
                32,
            )
            if "d_batchnorm" in params:
                assert cfg.nets.d_norm == ("batch" if params["d_batchnorm"] else "none")
            for name, key in (("clip", "clip"), ("gamma", "gamma"), ("lambda_k", "lambda_k")):
                if name in params:
                    assert cfg.model[key] == params[name]
            if "penalty" in params:
                assert cfg.model.penalty.weight == params["penalty"] and cfg.nets.d_norm == "none"
    losses = {loss: load_config(config_overrides(loss, draw_config(loss, 0))).model for loss in LOSSES}
    assert (losses["mm"].loss, losses["ns"].loss, losses["lsgan"].loss) == ("minimax", "nonsaturating", "least_squares")
    assert losses["wgan"].loss == losses["wgan_gp"].loss == "wasserstein" and losses["wgan"].clip > 0
    assert losses["wgan_gp"].penalty.name == "gp" and losses["dragan"].penalty.name == "dragan"
    assert losses["began"].name == "began"


def test_every_loss_trains_a_drawn_configuration(mnist_root) -> None:
    data = [f"data.data_dir={mnist_root}", "data.download=false", "metrics.names=[]"]
    for loss in LOSSES:
        params = draw_config(loss, 1, batch_sizes=(8,))
        result = run(*config_overrides(loss, params), *data, "steps=2", f"out=r/{loss}")
        assert result.status in ("completed", "diverged") and result.summary["steps_done"] >= 1, loss


# ----------------------------------------------------------------------------- min FID against the budget
def _inverted_cdf(sorted_values: list[float], num: int, den: int) -> float:
    """The smallest value whose share of the sorted list reaches num/den, in integers."""
    return sorted_values[-(-len(sorted_values) * num // den) - 1]


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_budget_curve_equals_brute_force_enumeration_of_the_subsets(k: int) -> None:
    rng = np.random.default_rng(k)
    values = list(np.round(rng.gamma(4.0, 8.0, size=k), 0))  # rounded: ties are likely
    if k >= 5:
        values[2] = values[4]
    curve = budget_curve(values)
    assert [c["budget"] for c in curve] == list(range(1, k + 1))
    for b, point in zip(range(1, k + 1), curve):
        mins = sorted(min(sub) for sub in itertools.combinations(values, b))
        assert point["mean"] == pytest.approx(float(np.mean(mins)), rel=1e-12)
        assert point["median"] == _inverted_cdf(mins, 1, 2)
        assert point["low"] == _inverted_cdf(mins, 1, 40) and point["high"] == _inverted_cdf(mins, 39, 40)
    assert curve[0]["mean"] == pytest.approx(float(np.mean(values)))  # one configuration: the average one
    assert curve[-1]["mean"] == curve[-1]["low"] == curve[-1]["high"] == min(values)  # all of them: the best


def test_budget_curve_agrees_with_resampling_subsets() -> None:
    """The exact mean against the Monte-Carlo estimate (what resampling b of K gives), within 4 SE."""
    values = list(np.random.default_rng(7).lognormal(3.0, 0.5, size=30))
    curve = budget_curve(values)
    rng = np.random.default_rng(0)
    for b in (1, 3, 10, 25):
        mins = np.array([min(rng.choice(values, size=b, replace=False)) for _ in range(20000)])
        se = mins.std(ddof=1) / math.sqrt(len(mins))
        assert abs(mins.mean() - curve[b - 1]["mean"]) < 4 * se + 1e-12


def test_a_diverged_configuration_is_the_worst_and_makes_the_mean_infinite_while_it_can_be_all() -> None:
    values = [30.0, math.inf, 20.0]
    curve = budget_curve(values)
    assert math.isinf(curve[0]["mean"]) and curve[0]["low"] == 20.0 and math.isinf(curve[0]["high"])
    assert curve[1]["mean"] == pytest.approx((20 + 20 + 30) / 3) and curve[2]["mean"] == 20.0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("arg", "words"),
    [
        ("models=ns,wgangp", ["wgangp", "wgan_gp", "models="]),
        ("budget=0", ["budget", ">= 1", "budget=10"]),
        ("budget=many", ["budget", "many"]),
        ("batch_sizes=0", ["batch_sizes"]),
        ("optim.lr_g=1e-3", ["optim.lr_g", "learning rate"]),
        ("data.batch_size=32", ["batch_sizes="]),
        ("model=wgan", ["models="]),
    ],
)
def test_bad_input_is_a_config_error_naming_the_fix(arg: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        parse_args(["protocol=lucic", arg])
    for word in words:
        assert word in str(e.value)
    with pytest.raises(ConfigError, match="lucic"):
        parse_args(["protocol=lucid"])
    with pytest.raises(ConfigError, match="budget"):
        draw_configs("ns", 0)


def test_bad_input_exits_2_through_the_cli_before_anything_runs(tmp_path: Path, capsys) -> None:
    for arg in ("models=ns,wgangp", "budget=0", "model.n_critc=2"):
        assert cli.main(["study", "protocol=lucic", arg, f"out={tmp_path / 'p'}"]) == cli.EXIT_CONFIG
        err = capsys.readouterr().err
        assert err.startswith("error: ") and arg.split("=")[0].split(",")[0] in err
    assert not (tmp_path / "p").exists()


def test_the_default_directory_follows_what_makes_the_fid() -> None:
    a = parse_args(["protocol=lucic", "steps=100", "metrics.n=500"])
    assert a.out == parse_args(["protocol=lucic", "metrics.n=500", "steps=100", "budget=50", "models=ns"]).out
    assert a.out != parse_args(["protocol=lucic", "steps=200", "metrics.n=500"]).out
    assert a.out != parse_args(["protocol=lucic", "steps=100", "metrics.n=500", "search_seed=1"]).out
    assert a.out == default_out(a) and a.out.parent == Path("runs/protocols")
    assert a.models == list(DEFAULT_MODELS) and a.budget == 10 and a.seeds == [0] and a.batch_sizes == [64]


# ----------------------------------------------------------------------------- the report
def _fake_runs(out: Path, args: list[str], fids: dict[str, list[float | None]]) -> None:
    """Settled runs, as a finished protocol leaves them (a None FID: a diverged run)."""
    s = parse_args(args)
    for loss, values in fids.items():
        for i, (params, fid) in enumerate(zip(draw_configs(loss, len(values)), values)):
            run_dir = out / loss / f"config_{i:03d}" / "seed_0"
            run_dir.mkdir(parents=True)
            OmegaConf.save(load_config([*config_overrides(loss, params), *s.overrides]), run_dir / "config.yaml")
            status = "completed" if fid is not None else "diverged"
            summary = {"status": status, "steps": 7, "steps_done": 7, "final": {"fid": fid} if fid else {}}
            (run_dir / "summary.json").write_text(json.dumps({**summary, "wall_s": 2.0, "device": "CPU"}))


def test_the_report_of_settled_runs_without_training(tmp_path: Path) -> None:
    out = tmp_path / "p"
    args = ["protocol=lucic", "models=ns,wgan_gp", "budget=3", "steps=7", f"out={out}"]
    _fake_runs(out, args, {"ns": [40.0, 30.0, 50.0], "wgan_gp": [35.0, None, 25.0]})
    run_protocol(args, echo=False)  # every run is settled: nothing trains
    result = json.loads((out / "protocol.json").read_text())
    ns, gp = result["models"]["ns"], result["models"]["wgan_gp"]
    assert ns["budget_curve"][0]["mean"] == pytest.approx(40.0) and ns["best"]["fid"] == 30.0
    assert ns["budget_curve"][2] == {"budget": 3, "mean": 30.0, "median": 30.0, "low": 30.0, "high": 30.0}
    assert gp["diverged_runs"] == 1 and gp["configs"][1]["fid"] is None  # +inf, written as null
    assert gp["budget_curve"][0]["mean"] is None and gp["budget_curve"][1]["mean"] == pytest.approx((25 + 25 + 35) / 3)
    assert not result["comparable_to_paper"] and any("classifier" in d for d in result["differences"])
    assert result["missing"] == [] and result["devices"] == ["CPU"]
    table = (out / "protocol.md").read_text()
    assert "| NS GAN | 3 / 3 | 0 | 30.0 (config 1) | 30.0 | 40.0 [30.0, 50.0] | 26.5 |" in table
    assert "| WGAN GP | 3 / 3 | 1 | 25.0 (config 2) | 25.0 | ∞ (diverged) [25.0, ∞ (diverged)] | 24.5 |" in table
    assert "Not the paper's protocol" in table and "7 G steps per run" in table
    assert (out / "budget_curve.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="steps=7 \\(now 8\\)"):  # other settings never mix into the table
        run_protocol([*args[:-2], "steps=8", f"out={out}"], echo=False)


def test_the_paper_column_marks_what_is_not_confirmed() -> None:
    assert LOSSES["began"].published is None
    assert {k: LOSSES[k].published for k in DEFAULT_MODELS} == {
        "mm": 29.6,
        "ns": 26.5,
        "lsgan": 30.7,
        "wgan": 21.5,
        "wgan_gp": 24.5,
        "dragan": 27.7,
    }
    result = {
        "paper": "X: Title",
        "experiment": "lucic_fashion",
        "settings": {
            "metrics.features": "inception",
            "metrics.n": 10000,
            "metrics.ref_split": "test",
            "metrics.n_ref": 10000,
            "steps": 15625,
            "seeds": [0],
            "budget": 1,
            "search_seed": 0,
            "beta2": 0.999,
            "batch_sizes": [64],
            "ranges_source": "src",
            "overrides": [],
        },
        "models": {
            "began": {
                "label": "BEGAN",
                "configs_done": 0,
                "diverged_runs": 0,
                "best": None,
                "best_run_fid": None,
                "budget_curve": [],
                "published_fid": None,
                "overrides": [],
                "search_space": {},
            }
        },
        "published_source": "the paper",
        "differences": [],
        "devices": [],
        "wall_s": {"runs_total": 0.0, "this_call": 0.0},
        "missing": [],
    }
    table = protocol_markdown(result)
    assert "| BEGAN | 0 / 1 | 0 | – | – | – | – (not confirmed) |" in table and "Not the paper's" not in table


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow  # 4 training subprocesses: 61-107 s on this busy 2-core machine (~60 s of CPU)
@pytest.mark.xdist_group("subprocess_runs")
def test_the_protocol_end_to_end_on_tiny_runs(tmp_path: Path, mnist_root: Path) -> None:
    out = tmp_path / "protocol"
    args = [
        "protocol=lucic",
        "models=ns,wgan_gp",
        "budget=2",
        "seeds=0",
        "steps=3",
        "batch_sizes=8",
        f"out={out}",
        f"data.data_dir={mnist_root}",
        "data.download=false",
        *[a for a in TINY if not a.startswith("data.batch_size")],
    ]
    assert cli.main(["study", *args]) == 0
    for name in ("protocol.json", "protocol.md", "budget_curve.png"):
        assert (out / name).is_file()
    result = json.loads((out / "protocol.json").read_text())
    table = (out / "protocol.md").read_text()
    assert "| NS GAN | 2 / 2 |" in table and "| WGAN GP | 2 / 2 |" in table
    for loss in ("ns", "wgan_gp"):
        fids = [  # straight from the runs' own summaries
            json.loads((out / loss / f"config_{i:03d}" / "seed_0" / "summary.json").read_text())["final"]["fid"]
            for i in range(2)
        ]
        curve = result["models"][loss]["budget_curve"]
        assert curve[0]["mean"] == pytest.approx(float(np.mean(fids))) and curve[1]["mean"] == pytest.approx(min(fids))
    logs = sorted(out.glob("*/config_*/logs/seed_0.log"))
    assert len(logs) == 4
    before = [log.read_text() for log in logs]
    run_protocol(args, echo=False)  # resumable: nothing is missing, nothing runs again
    assert [log.read_text() for log in logs] == before
    run_protocol([*(a for a in args if a != "seeds=0"), "seeds=0-1", "models=ns"], echo=False)
    report = json.loads((out / "ns" / "config_000" / "report.json").read_text())
    assert [r["seed"] for r in report["per_seed"]] == [0, 1]  # the study's report keeps the earlier seed
