"""Studies and the lab: what a review of 2026-11-28 found (each test failed before its fix).

Seeds are faked (``fake_seed_runs``: the training subprocess replaced by one that writes a summary) except
where the behaviour is the training run's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gan_lightning.files import write_json
from gan_lightning.lab import lab_markdown, lab_row
from gan_lightning.registry import ConfigError
from gan_lightning.study import compare_studies, run_study, write_report
from tests.conftest import TINY
from tests.test_study_and_sweep import fake_seed_runs


def mode_study(sdir: Path, finals: list[dict[str, float]], statuses: list[str] | None = None) -> None:
    """A study directory whose seeds have these final mode statistics (and statuses)."""
    for seed, final in enumerate(finals):
        d = sdir / f"seed_{seed}"
        d.mkdir(parents=True)
        status = (statuses or ["completed"] * len(finals))[seed]
        summary = {"status": status, "steps": 4, "steps_done": 4, "final": final, "best": {}}
        write_json(d / "summary.json", summary)
    write_report(sdir, list(range(len(finals))), steps=4)


def table_line(row: dict[str, Any]) -> str:
    text = lab_markdown({"rows": [row], "published": [], "device": "cpu", "overrides": []})
    return next(x for x in text.splitlines() if f"| {row['method']} |" in x)


INF = float("inf")


def test_a_metric_infinite_in_every_seed_is_reported_as_such_not_dropped(tmp_path: Path) -> None:
    """A reverse KL infinite in every seed (no high-quality sample anywhere) vanished from report.json, report.md
    and the lab row, whose '–' reads as 'no such measure' where it is the worst outcome."""
    collapsed = [{"modes/covered": 0.0, "modes/high_quality": 0.0, "modes/kl": INF}] * 2
    mode_study(tmp_path / "a", collapsed)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["final"]["modes/kl"] == {"n": 0}
    assert "| modes/kl (0 of 2 seeds finite) |" in (tmp_path / "a" / "report.md").read_text()
    row = lab_row("grid", "gan", tmp_path / "a")
    assert row["kl"]["n"] == 0 and "no finite value (0 of 2 seeds)" in table_line(row)
    # compare says why it does not test the KL, rather than refusing it as unknown
    mode_study(tmp_path / "b", [{"modes/covered": 25.0, "modes/high_quality": 0.9, "modes/kl": 0.01}] * 2)
    result = compare_studies(tmp_path / "a", tmp_path / "b", metrics=["modes/kl"])
    assert result["metrics"]["modes/kl"]["non_finite_a"] == 2


def test_a_measure_the_benchmark_lacks_stays_a_dash(tmp_path: Path) -> None:
    mode_study(tmp_path / "s", [{"stacked/modes": 990.0, "stacked/kl": 0.3}] * 2)
    row = lab_row("stacked_fashion", "gan", tmp_path / "s")
    assert row["high_quality"]["n"] == 0 and "| 990.0 ± 0.0 | – | 0.30 ± 0.00 |" in table_line(row)


def test_the_lab_row_says_how_many_seeds_were_asked_and_what_became_of_the_others(tmp_path: Path) -> None:
    """Seeds that diverged or failed left the row silently: '2' seeds, averaged, exit 0."""
    good = {"modes/covered": 25.0, "modes/high_quality": 0.9, "modes/kl": 0.01}
    mode_study(tmp_path / "s", [good, {**good, "modes/covered": 24.0}, {**good, "modes/covered": 3.0}],
               ["completed", "completed", "diverged"])  # fmt: skip
    row = lab_row("grid", "gan", tmp_path / "s")
    assert (row["seeds"], row["asked"], row["not_completed"]) == (2, 3, {"diverged": 1})
    assert "| gan | 2 of 3 (1 diverged) |" in table_line(row) and "| 24.5 ± 0.7 |" in table_line(row)


def test_the_lab_exits_1_naming_a_row_with_missing_seeds_or_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    from gan_lightning.cli import main

    fake_seed_runs(monkeypatch, lambda seed, out: ("diverged", 3) if seed == 1 else ("completed", 0))
    code = main(["lab", "benchmarks=grid", "methods=gan", "seeds=0-1", "steps=2", f"out={tmp_path / 'lab'}"])
    err = capsys.readouterr().err
    assert code == 1 and "grid/gan: 1 of 2 seeds did not complete (seed 1: diverged)" in err
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    code = main(["lab", "benchmarks=stacked_fashion", "methods=unrolled5", "seeds=0", f"out={tmp_path / 'r'}"])
    assert code == 1 and "stacked_fashion/unrolled5: refused" in capsys.readouterr().err
    code = main(["lab", "benchmarks=grid", "methods=gan", "seeds=0", "steps=2", f"out={tmp_path / 'ok'}"])
    assert code == 0


def test_a_lab_refuses_a_call_before_any_of_its_studies_runs(tmp_path: Path, monkeypatch) -> None:
    """A row's own refusal (here: fewer steps than its seeds ran) came after the rows before it had trained."""
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    from gan_lightning.lab import run_lab

    out = f"out={tmp_path / 'lab'}"
    run_lab(["benchmarks=grid", "methods=gan", "seeds=0", "steps=4", "optim.schedule=constant", out], echo=False)
    calls.clear()
    with pytest.raises(ConfigError, match=r"grid/gan was run with other overrides \(steps: 4 -> 2\)"):
        run_lab(
            ["benchmarks=grid", "methods=pacgan2,gan", "seeds=0", "steps=2", "optim.schedule=constant", out],
            echo=False,
        )
    assert calls == [] and not (tmp_path / "lab" / "grid" / "pacgan2").exists()


def test_the_lab_lists_a_repeated_name_once(tmp_path: Path, monkeypatch) -> None:
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    from gan_lightning.lab import run_lab

    out = run_lab(["benchmarks=grid,grid", "methods=gan,gan", "seeds=0", "steps=2", f"out={tmp_path}"], echo=False)
    assert len(json.loads((out / "lab.json").read_text())["rows"]) == 1


def test_a_failed_growth_does_not_lock_the_study_at_the_steps_it_never_reached(tmp_path: Path, monkeypatch) -> None:
    """study.json took the new steps before any seed ran: when every seed failed to grow, going back to the steps
    they had was refused as 'fewer steps than the study ran'."""
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    args = ["exp=gmm_ring", "optim.schedule=constant", "seeds=0", f"out={tmp_path / 's'}"]
    run_study([*args, "steps=2"], echo=False)
    fake_seed_runs(monkeypatch, lambda seed, out: (None, 1))  # the extension fails before training
    run_study([*args, "steps=4"], echo=False)
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    sdir = run_study([*args, "steps=2"], echo=False)  # refused before the fix
    assert json.loads((sdir / "report.json").read_text())["completed"] == [0]
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    run_study([*args, "steps=4"], echo=False)  # the seed now ran 4 steps: 2 is refused
    with pytest.raises(ConfigError, match=r"steps: 4 -> 2"):
        run_study([*args, "steps=2"], echo=False)


def test_the_study_figures_show_only_the_completed_seeds(tmp_path: Path, monkeypatch) -> None:
    from gan_lightning import study

    seen: dict[str, Any] = {}

    def spy(sdir: Path, seeds: list[int], keys: list[str]) -> None:
        seen["seeds"] = seeds

    monkeypatch.setattr(study, "plot_study", spy)
    good = {"modes/covered": 25.0, "modes/high_quality": 0.9, "modes/kl": 0.01}
    mode_study(tmp_path, [good, good, good, good], ["completed", "diverged", "completed", "failed"])
    assert seen["seeds"] == [0, 2]


def test_a_study_refuses_an_out_that_holds_a_run_or_other_files(tmp_path: Path, monkeypatch) -> None:
    """out= pointing at a run directory wrote report.*, study.json and its own curves.png over the run's."""
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("exp: gmm_ring\n")
    (run / "curves.png").write_bytes(b"the run's")
    with pytest.raises(ConfigError, match=r"holds a training run.*out="):
        run_study(["exp=gmm_ring", "steps=2", "seeds=0", f"out={run}"], echo=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not a study.*notes\.txt"):
        run_study(["exp=gmm_ring", "steps=2", "seeds=0", f"out={other}"], echo=False)
    assert calls == [] and (run / "curves.png").read_bytes() == b"the run's"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "curves.png"]
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    run_study(["exp=gmm_ring", "steps=2", "seeds=0", f"out={tmp_path / 'new'}"], echo=False)  # a new folder: fine


def test_a_later_call_without_reproducible_keeps_the_verdict(tmp_path: Path, monkeypatch) -> None:
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    args = ["exp=gmm_ring", "steps=2", "seeds=0", f"out={tmp_path / 's'}"]
    sdir = run_study([*args, "reproducible=true"], echo=False)
    run_study(args, echo=False)
    assert json.loads((sdir / "report.json").read_text())["reproducibility"]["bitwise_equal"] is True
    assert "bitwise equal" in (sdir / "report.md").read_text()


def test_a_run_with_nothing_left_to_train_keeps_its_summarys_throughput_and_device(tmp_path: Path) -> None:
    """A run stopped at its last step (status interrupted) and started again wrote a summary with no throughput
    and the CPU as its device, whatever it had trained on."""
    from gan_lightning.config import load_config
    from gan_lightning.train import train

    args = ["exp=gmm_ring", "steps=3", *TINY, f"out={tmp_path / 'r'}"]
    train(load_config(args))
    path = tmp_path / "r" / "summary.json"
    before = json.loads(path.read_text())
    path.write_text(json.dumps({**before, "status": "interrupted", "device": "1 x NVIDIA H200"}))
    train(load_config([*args, "resume=auto"]))
    after = json.loads(path.read_text())
    assert after["status"] == "completed" and after["steps_done"] == 3
    assert after["g_iters_per_s"] == before["g_iters_per_s"] is not None
    assert after["device"] == "1 x NVIDIA H200" and after["final"] == before["final"]


def test_a_protocol_refuses_a_call_before_any_of_its_studies_runs(tmp_path: Path, monkeypatch) -> None:
    """A settled run of another length in configuration 1 was found only after configuration 0 had trained."""
    import shutil

    from gan_lightning.protocol import run_protocol
    from tests.test_protocol import _fake_runs

    out = tmp_path / "p"
    args = ["protocol=lucic", "models=ns", "budget=2", "steps=7", f"out={out}"]
    _fake_runs(out, args, {"ns": [40.0, 30.0]})
    shutil.rmtree(out / "ns" / "config_000")  # configuration 0 still to run, configuration 1 settled at 7 steps
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    with pytest.raises(ConfigError, match=r"steps=7 \(now 8\)"):
        run_protocol([*args[:-2], "steps=8", f"out={out}"], echo=False)
    assert calls == []
