"""A run's curves.png, the comparison plot and its false-discovery control, the BCa interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_lightning.cli import main
from gan_lightning.plots import read_curves, run_panels
from gan_lightning.study import bootstrap_ci, compare_studies


def test_every_run_writes_curves_of_losses_and_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["exp=gmm_ring", "steps=30", "log.every=5", "metrics.every=10", "metrics.n=500", "log.interpolate=false"]
    assert main(["train", *args, f"out={run}"]) == 0
    curves = read_curves(run)
    assert curves["loss/d"][0][:2] == [1.0, 5.0]  # x is the G step
    assert curves["modes/covered"][0] == [10.0, 20.0, 30.0]
    summary = json.loads((run / "summary.json").read_text())
    panels = run_panels(curves, [k for k in summary["final"] if k != "step"])
    assert panels[0] == ["loss/d", "loss/g"] and ["modes/covered", "raw/modes/covered"] in panels
    with Image.open(run / "curves.png") as im:
        cols = min(4, len(panels))
        assert im.size == (400 * cols, int(310 * -(-len(panels) // cols)))  # one panel per group


def _study(path: Path, per_metric: dict[str, list[float]]) -> None:
    path.mkdir(parents=True)
    n = len(next(iter(per_metric.values())))
    per_seed = [{"seed": i, "status": "completed", "final": {k: v[i] for k, v in per_metric.items()}} for i in range(n)]
    (path / "report.json").write_text(json.dumps({"final": {k: {} for k in per_metric}, "per_seed": per_seed}))


def bh(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values by their definition: min over j >= i of m p_(j) / j."""
    m, order = len(p), np.argsort(p)
    ranked = [p[i] * m / (r + 1) for r, i in enumerate(order)]
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    return list(out)


def test_compare_controls_false_discoveries_across_metrics(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    a = {f"m{i}": list(rng.normal(0, 1, 10)) for i in range(6)}
    b = {f"m{i}": list(rng.normal(0, 1, 10)) for i in range(6)}
    b["m0"] = list(rng.normal(3, 1, 10))  # one real difference among six metrics
    _study(tmp_path / "a", a)
    _study(tmp_path / "b", b)
    r = compare_studies(tmp_path / "a", tmp_path / "b")
    keys = sorted(r["metrics"])
    for test in ("welch_p", "mann_whitney_p"):
        raw = [r["metrics"][k][test] for k in keys]
        assert [r["metrics"][k][test + "_adjusted"] for k in keys] == pytest.approx(bh(raw))
    assert r["metrics"]["m0"]["differ"]
    for k in keys:
        m = r["metrics"][k]
        assert m["differ"] == (m["welch_p_adjusted"] < 0.05 and m["mann_whitney_p_adjusted"] < 0.05)
        assert m["welch_p_adjusted"] >= m["welch_p"]
    assert r["values"]["m0"] == [a["m0"], b["m0"]]
    out = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert "plot: " + str(out.with_suffix(".png")) in capsys.readouterr().out
    with Image.open(out.with_suffix(".png")) as im:
        assert im.size[0] > 6 * 200  # a panel per metric


def test_compare_leaves_a_metric_without_a_p_value_out_of_the_correction(tmp_path: Path) -> None:
    """Both studies constant on a metric (every mode covered in every seed): Welch's p is not a
    number; it takes no part in the correction and the metric does not 'differ'."""
    rng = np.random.default_rng(2)
    _study(tmp_path / "a", {"covered": [8.0] * 5, "kl": list(rng.normal(0, 1, 5))})
    _study(tmp_path / "b", {"covered": [8.0] * 5, "kl": list(rng.normal(5, 1, 5))})
    r = compare_studies(tmp_path / "a", tmp_path / "b")["metrics"]
    assert not r["covered"]["differ"] and np.isnan(r["covered"]["welch_p_adjusted"])
    assert r["covered"]["cohens_d"] == 0.0  # equal constants: no effect (not inf * sign(0) = nan)
    assert r["kl"]["welch_p_adjusted"] == pytest.approx(r["kl"]["welch_p"])  # the only test in the family
    assert r["kl"]["differ"]


def test_bca_interval_covers_a_skewed_mean_and_leans_with_the_skew() -> None:
    """Exponential data (mean 1): the BCa interval of the mean covers 1 in about 95% of samples of 20
    and reaches further above the sample mean than below it (the skew of the mean's distribution)."""
    rng = np.random.default_rng(0)
    covered, above, below = 0, [], []
    trials = 200
    for t in range(trials):
        x = rng.exponential(1.0, 20)
        lo, hi = bootstrap_ci(list(x), resamples=2000, seed=t)
        covered += lo <= 1.0 <= hi
        above.append(hi - x.mean())
        below.append(x.mean() - lo)
    assert 0.88 <= covered / trials <= 0.99
    assert np.mean(above) > 1.1 * np.mean(below)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)  # degenerate: BCa undefined, the value itself


def test_small_images_are_enlarged_by_whole_pixels_in_grids(tmp_path: Path) -> None:
    import torch

    from gan_lightning.callbacks.samples import save_grid

    images = torch.rand(4, 1, 28, 28)
    grid = save_grid(images, tmp_path / "g.png", nrow=2)
    k = 3  # ceil(64 / 28)
    assert grid.shape[-2:] == (2 * 28 * k + 3 * 2, 2 * 28 * k + 3 * 2)
    tile = grid[0, 2 : 2 + 28 * k, 2 : 2 + 28 * k]
    assert torch.equal(tile, images[0, 0].repeat_interleave(k, 0).repeat_interleave(k, 1))  # nearest: k x k blocks
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (grid.shape[-1], grid.shape[-2])
    big = torch.rand(2, 3, 64, 64)
    assert save_grid(big, tmp_path / "b.png").shape[-1] == 2 * 64 + 3 * 2  # large enough: unchanged


def test_sweep_plot_takes_list_valued_parameters(tmp_path: Path) -> None:
    from gan_lightning.plots import plot_sweep

    trials = [
        {"params": {"optim.betas": [0.5, 0.999], "optim.lr_d": 1e-4}, "metric": 0.5},
        {"params": {"optim.betas": [0.0, 0.9], "optim.lr_d": 1e-3}, "metric": 0.7},
    ]
    out = plot_sweep(trials, "modes/covered", tmp_path / "s.png")
    assert out is not None and out.is_file()  # the numeric parameter is plotted, the list one skipped


def test_a_sweep_metric_without_a_goal_means_minimize() -> None:
    from gan_lightning.registry import ConfigError
    from gan_lightning.sweep import check_goal

    check_goal({"metric": {"name": "fid"}})  # wandb's default goal is minimize
    with pytest.raises(ConfigError):
        check_goal({"metric": {"name": "modes/covered"}})  # higher is better: minimize is wrong


def test_compare_with_three_seeds_each_rests_on_welch_when_the_rank_test_cannot_reach_alpha(tmp_path: Path) -> None:
    """With 3 and 3 seeds the exact two-sided Mann-Whitney p-value is at least 2 / C(6, 3) = 0.1, so at
    alpha 0.05 it can never decide: the verdict rests on Welch's t, and the report says so. With 5 and 5
    seeds (smallest p 2 / 252) both tests must agree, as before."""
    from math import comb

    from scipy import stats

    separated = stats.mannwhitneyu([10.0, 11.0, 12.0], [20.0, 21.0, 22.0], alternative="two-sided")
    assert separated.pvalue == pytest.approx(2 / comb(6, 3))  # the smallest p the rank test can give
    _study(tmp_path / "a", {"fid": [10.0, 11.0, 12.0], "same": [1.0, 2.0, 3.0]})
    _study(tmp_path / "b", {"fid": [20.0, 21.0, 22.0], "same": [1.5, 2.5, 2.0]})
    r = compare_studies(tmp_path / "a", tmp_path / "b")["metrics"]
    assert r["fid"]["mann_whitney_min_p"] == pytest.approx(0.1)
    assert not r["fid"]["mann_whitney_can_decide"]
    assert r["fid"]["welch_p_adjusted"] < 0.05 and r["fid"]["differ"]
    assert not r["same"]["differ"]  # Welch alone still needs a small p
    _study(tmp_path / "c", {"fid": [10.0, 11.0, 12.0, 13.0, 14.0]})
    _study(tmp_path / "d", {"fid": [10.5, 11.5, 12.5, 13.5, 30.0]})
    m = compare_studies(tmp_path / "c", tmp_path / "d")["metrics"]["fid"]
    assert m["mann_whitney_can_decide"] and m["mann_whitney_min_p"] == pytest.approx(2 / comb(10, 5))
    assert m["differ"] == (m["welch_p_adjusted"] < 0.05 and m["mann_whitney_p_adjusted"] < 0.05)


def exact_rank_p(x: list[float], y: list[float]) -> float:
    """Two-sided exact permutation p-value of the Mann-Whitney U (ties by mid-ranks): every split of the pooled
    values into groups of len(x) and len(y), counted by brute force."""
    from itertools import combinations

    from scipy.stats import rankdata

    pooled = np.array(x + y, dtype=np.float64)
    ranks, n, m = rankdata(pooled), len(x), len(y)
    centre = n * (n + m + 1) / 2  # E[rank sum of x]
    observed = abs(ranks[:n].sum() - centre)
    splits = list(combinations(range(n + m), n))
    extreme = sum(abs(ranks[list(s)].sum() - centre) >= observed - 1e-9 for s in splits)
    return extreme / len(splits)


def test_compare_uses_the_exact_rank_test_under_ties_and_the_pooled_std_of_unequal_studies(tmp_path: Path) -> None:
    """Whole-number metrics (modes covered) tie: scipy's default then takes the normal approximation, whose p
    (0.047 here) the exact test (0.086) cannot give; and Cohen's d pools the variances weighted by n - 1."""
    x, y = [8.0, 8.0, 7.0, 7.0], [7.0, 6.0, 6.0, 6.0]
    _study(tmp_path / "a", {"modes": x})
    _study(tmp_path / "b", {"modes": y})
    m = compare_studies(tmp_path / "a", tmp_path / "b")["metrics"]["modes"]
    assert m["mann_whitney_p"] == pytest.approx(exact_rank_p(x, y), rel=1e-9)
    assert not m["differ"]
    u = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    v = [4.0, 9.0, 11.0]
    _study(tmp_path / "c", {"fid": u})
    _study(tmp_path / "d", {"fid": v})  # 10 seeds against 3 (seeds without a finite value are not tested at all)
    d = compare_studies(tmp_path / "c", tmp_path / "d")["metrics"]["fid"]
    pooled = np.sqrt((9 * np.var(u, ddof=1) + 2 * np.var(v, ddof=1)) / 11)
    assert d["n_b"] == 3 and d["cohens_d"] == pytest.approx((np.mean(u) - np.mean(v)) / pooled, rel=1e-12)


def test_compare_refuses_a_metric_neither_study_has_and_names_the_near_miss(tmp_path: Path) -> None:
    """A typo in --metrics printed 'needs at least 2 completed seeds' and exited 0."""
    from gan_lightning.registry import ConfigError

    _study(tmp_path / "a", {"modes/covered": [1.0, 2.0, 3.0]})
    _study(tmp_path / "b", {"modes/covered": [2.0, 3.0, 4.0]})
    with pytest.raises(ConfigError, match=r"'modes/covred'.*did you mean modes/covered"):
        compare_studies(tmp_path / "a", tmp_path / "b", metrics=["modes/covred"])
    with pytest.raises(ConfigError, match="--alpha"):
        compare_studies(tmp_path / "a", tmp_path / "b", alpha=5)
