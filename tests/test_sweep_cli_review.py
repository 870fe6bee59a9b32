"""Sweeps and command-line input: what a review of 2026-11-28 found (each test failed before its fix)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gan_lightning.config import load_config
from gan_lightning.registry import ConfigError
from tests.test_study_and_sweep import command


def grid_sweep(tmp_path: Path, values: str = "[2, 3]", key: str = "model.z_dim") -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(
        f"method: grid\nparameters:\n  {key}: {{values: {values}}}\n"
        + command("exp=gmm_ring", "steps=3", "metrics.names=[]", "log.progress=false")
    )
    return path


def test_a_trial_that_did_not_complete_runs_again_and_the_sweep_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    """A refused, interrupted or killed trial was final: never retried, and the sweep exited 0."""
    from gan_lightning import sweep
    from gan_lightning.cli import main

    calls: list[str] = []

    def trial(overrides, out, log, env=None):  # type: ignore[no-untyped-def]
        calls.append(out.name)
        if fail:
            return 2  # refused before training (e.g. its data missing)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"status": "completed", "steps": 3, "best": {}}))
        return 0

    monkeypatch.setattr(sweep, "run_train", trial)
    path, out = grid_sweep(tmp_path), str(tmp_path / "sw")
    fail = True
    assert main(["sweep", str(path), "--offline", "--count", "2", "--out", out]) == 1
    assert "2 of 2 trials did not complete" in capsys.readouterr().err
    fail = False
    calls.clear()
    assert main(["sweep", str(path), "--offline", "--count", "2", "--out", out]) == 0  # the same command, fixed
    assert calls == ["trial_000", "trial_001"]
    rows = json.loads((tmp_path / "sw" / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["completed", "completed"] and all("error" not in r for r in rows)


def test_a_null_parameter_value_reaches_the_config_as_null(tmp_path: Path, monkeypatch) -> None:
    from gan_lightning import sweep

    seen: list[list[str]] = []
    monkeypatch.setattr(sweep, "run_train", lambda overrides, out, log, env=None: seen.append(overrides) or 2)
    path = grid_sweep(tmp_path, '[null, "00:00:00:30"]', "trainer.max_time")
    sweep.run_offline(path, 2, tmp_path / "sw", echo=False)
    assert [o[-1] for o in seen] == ["trainer.max_time=null", "trainer.max_time=00:00:00:30"]  # not 'None'
    assert load_config(["exp=gmm_ring", seen[0][-1]]).trainer.max_time is None


def test_study_seeds_are_checked_before_any_trial(tmp_path: Path, monkeypatch) -> None:
    from gan_lightning import sweep
    from gan_lightning.cli import main

    calls: list[str] = []
    monkeypatch.setattr(sweep, "run_train", lambda overrides, out, log, env=None: calls.append(out.name) or 0)
    code = main(["sweep", str(grid_sweep(tmp_path)), "--offline", "--out", str(tmp_path / "s"), "--study-seeds", "x"])
    assert code == 2 and calls == []
    code = main(["sweep", str(grid_sweep(tmp_path)), "--offline", "--out", str(tmp_path / "s"), "--seed", "-1"])
    assert code == 2 and calls == []


@pytest.mark.parametrize("bad", ["optim.lr_d=inf", "optim.lr_g=nan", "model.penalty.weight=nan", "optim.alpha=1.5"])
def test_a_non_finite_rate_or_weight_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=rf"bad value for '{bad.split('=')[0]}'"):
        load_config(["exp=gmm_ring", bad])


def test_directions_refuses_a_non_finite_step(tmp_path: Path) -> None:
    from gan_lightning.directions import check_step

    for bad in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(ConfigError, match="bad value for '--step'"):
            check_step(bad)
    check_step(2.0)


def test_an_empty_image_array_is_a_clear_error(tmp_path: Path) -> None:
    from gan_lightning.evaluate import load_images

    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 28, 28), dtype=np.float32))
    with pytest.raises(ConfigError, match="no images"):
        load_images(str(tmp_path / "empty.npy"), None)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("method: gird\nmetric: {name: modes/covered, goal: maximize}\nparameters:\n  model.z_dim: {values: [2]}\n",
         ["gird", "grid"]),
        ("method: random\nmetric: {name: modes/covered, goal: maximize}\nparameters:\n"
         "  optim.lr_d: {distribution: log_uniform_values, min: 1e-4, max: 1e-3}\n", ["optim.lr_d", "1.0e-4"]),
        ("method: random\nmetric: modes/covered\nparameters:\n  model.z_dim: {values: [2]}\n", ["metric", "name"]),
        ("method: grid\nparameters:\n  model.z_dim: {values: []}\n", ["model.z_dim", "values"]),
    ],
)  # fmt: skip
def test_a_sweep_file_wandbs_engine_would_refuse_is_a_config_error(tmp_path: Path, spec: str, words: list[str]) -> None:
    """Each was a traceback (jsonschema's ValidationError, AttributeError, IndexError), exit 1."""
    from gan_lightning.sweep import run_offline

    path = tmp_path / "s.yaml"
    path.write_text(spec + command("exp=gmm_ring", "steps=3"))
    with pytest.raises(ConfigError) as refused:
        run_offline(path, 1, tmp_path / "sw", echo=False)
    assert all(w in str(refused.value) for w in words), str(refused.value)
    assert not (tmp_path / "sw").exists()


def test_a_normal_distribution_is_a_valid_sweep_parameter(tmp_path: Path, monkeypatch) -> None:
    from gan_lightning import sweep

    seen: list[str] = []
    monkeypatch.setattr(sweep, "run_train", lambda overrides, out, log, env=None: seen.append(overrides[-1]) or 2)
    path = tmp_path / "s.yaml"
    path.write_text(
        "method: random\nmetric: {name: modes/covered, goal: maximize}\nparameters:\n"
        "  optim.lr_d: {distribution: normal, mu: 0.001, sigma: 0.0001}\n" + command("exp=gmm_ring", "steps=3")
    )
    sweep.run_offline(path, 1, tmp_path / "sw", echo=False)
    assert len(seen) == 1 and seen[0].startswith("optim.lr_d=")


def test_a_sweep_out_that_holds_other_files_is_refused(tmp_path: Path) -> None:
    from gan_lightning.sweep import run_offline

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my own table")
    with pytest.raises(ConfigError, match=r"not a sweep.*results\.csv"):
        run_offline(grid_sweep(tmp_path), 1, mine, echo=False)
    assert [p.name for p in mine.iterdir()] == ["results.csv"] and (mine / "results.csv").read_text() == "my own table"
