"""The mode-collapse lab: a study per (benchmark, method) and one table beside the published rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gan_lightning.config import load_config
from gan_lightning.files import write_json
from gan_lightning.lab import METHODS, lab_markdown, run_lab
from gan_lightning.registry import ConfigError
from tests.conftest import REPO


def test_every_lab_method_is_a_valid_override_of_both_protocols() -> None:
    for mixture in ("grid", "ring"):
        base = load_config([f"exp=gmm_{mixture}_pacgan_protocol"])
        assert base.nets.mlp_hidden == 400 and base.nets.mlp_layers == 4 and base.data.batch_size == 100
        for overrides in METHODS.values():
            load_config([f"exp=gmm_{mixture}_pacgan_protocol", *overrides])  # raises on a refused combination


def test_lab_runs_a_study_per_method_and_tabulates_them(tmp_path: Path) -> None:
    out = run_lab(
        [
            "jobs=1",  # a study key: it reaches the study runner, not the config
            "benchmarks=grid",
            "methods=gan,pacgan2",
            "seeds=0",
            "steps=30",
            f"out={tmp_path / 'lab'}",
            "log.progress=false",
        ],
        echo=False,
    )
    result = json.loads((out / "lab.json").read_text())
    assert [(r["benchmark"], r["method"], r["seeds"], r["steps"]) for r in result["rows"]] == [
        ("grid", "gan", 1, [30]),
        ("grid", "pacgan2", 1, [30]),
    ]
    pack = json.loads((out / "grid" / "pacgan2" / "seed_0" / "summary.json").read_text())
    config = (out / "grid" / "pacgan2" / "seed_0" / "config.yaml").read_text()
    assert pack["status"] == "completed" and "pack: 2" in config
    for row in result["rows"]:  # the row holds the seed's own final values (one seed: std 0)
        summary = json.loads((out / "grid" / row["method"] / "seed_0" / "summary.json").read_text())
        assert row["modes"] == {"mean": summary["final"]["modes/covered"], "std": None, "n": 1, "measured": True}
        assert row["high_quality"]["mean"] == summary["final"]["modes/high_quality"]
        assert row["devices"] == [summary["device"]] and result["device"] == summary["device"]  # where seeds ran
    table = (out / "lab.md").read_text()
    assert table == lab_markdown(result) and "PacGAN4 (PacGAN Table 1) | published | – | 24.8 | 93.6 | 0.04" in table


def test_lab_refuses_an_unknown_method_with_exit_2(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "gan_lightning", "lab", "methods=gan,pacgan9", f"out={tmp_path}"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 2 and "pacgan9" in p.stderr and "pacgan4" in p.stderr
    assert not any(tmp_path.iterdir())  # nothing was run or written


def test_a_method_the_benchmarks_model_refuses_gets_a_row_saying_why(tmp_path: Path) -> None:
    lab = tmp_path / "not" / "there"  # no study runs, so nothing else makes the folder
    out = run_lab(["benchmarks=stacked_fashion", "methods=unrolled5", "seeds=0", f"out={lab}"], echo=False)
    (row,) = json.loads((out / "lab.json").read_text())["rows"]
    assert row["seeds"] == 0 and "BatchNorm" in row["refused"]  # DCGAN's critic has BatchNorm
    assert "refused: bad value for 'nets.d_norm'" in (out / "lab.md").read_text()
    assert not (lab / "stacked_fashion").exists()  # no run was started


def test_a_bad_override_fails_the_lab_instead_of_refusing_every_method(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.n_critc"):
        run_lab(["benchmarks=grid", "methods=gan", "seeds=0", "model.n_critc=2", f"out={tmp_path}"], echo=False)


def test_a_seed_without_a_finite_kl_is_counted_in_the_row(tmp_path: Path) -> None:
    """A seed with no high-quality sample has an infinite reverse KL (written as null): the row's KL mean, over
    the other seeds only, was printed under '2 seeds' as if it covered both."""
    from gan_lightning.lab import lab_row
    from gan_lightning.study import write_report

    for seed, (hq, kl) in enumerate([(0.9, 0.02), (0.0, float("inf"))]):
        d = tmp_path / f"seed_{seed}"
        d.mkdir()
        final = {"modes/covered": 25.0 - 25 * seed, "modes/high_quality": hq, "modes/kl": kl}
        summary = {"status": "completed", "steps": 4, "steps_done": 4, "final": final, "best": {}}
        write_json(d / "summary.json", summary)
    write_report(tmp_path, [0, 1], steps=4)
    row = lab_row("grid", "gan", tmp_path)
    assert row["seeds"] == 2 and row["kl"]["n"] == 1 and row["modes"]["n"] == 2
    line = next(
        x
        for x in lab_markdown({"rows": [row], "published": [], "device": "cpu", "overrides": []}).splitlines()
        if "| gan |" in x
    )
    assert "12.5 ± 17.7" in line and "0.02 (1 of 2 seeds finite)" in line


@pytest.mark.parametrize(
    "override", ["exp=gmm_ring", "model.pack=1", "model.unroll=0", "nets.d_minibatch=none", "model.feature_matching=1"]
)
def test_an_override_of_what_the_lab_sets_is_refused(tmp_path: Path, override: str) -> None:
    """The last value wins, so exp= trained one experiment under both benchmarks' names and model.pack=1 was
    tabulated as PacGAN4 (review): the lab's own keys are refused before any study, naming the fix."""
    with pytest.raises(ConfigError, match="set by the lab"):
        run_lab(["benchmarks=grid", "methods=pacgan4", "seeds=0", override, f"out={tmp_path}"], echo=False)
    assert not any(tmp_path.iterdir())
