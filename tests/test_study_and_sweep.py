"""Seeded studies (resume, aggregates, reproducibility), comparisons, offline sweeps, wandb offline."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.registry import ConfigError
from gan_lightning.rundir import RUN_DIR_ENV, read_summary, run_train
from gan_lightning.study import aggregate, bootstrap_ci, compare_studies, parse_seeds, run_study
from gan_lightning.sweep import run_offline

pytestmark = pytest.mark.xdist_group("subprocess_runs")

QUICK = ["exp=gmm_ring", "steps=30", "log.every=10", "log.sample_every=30", "metrics.every=15", "metrics.n=500"]


def test_parse_seeds() -> None:
    assert parse_seeds("0-2") == [0, 1, 2] and parse_seeds("3,1,1") == [1, 3] and parse_seeds("0-1,7") == [0, 1, 7]
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds("a-b")
    for bad in ("0-2,5-3", "5-3", "0-4294967296", "0-100000000"):  # review: dropped, misread or built 1e8 seeds
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match=r"seed.*2\*\*32"):
        load_config(["exp=gmm_ring", "seed=4294967296"])  # Lightning's seed_everything took it as a traceback


def test_aggregates_against_numpy() -> None:
    x = [3.0, 1.0, 4.0, 1.0, 5.0]
    a = aggregate(x)
    assert a["mean"] == pytest.approx(np.mean(x)) and a["std"] == pytest.approx(np.std(x, ddof=1))
    assert a["median"] == 3.0 and a["min"] == 1.0 and a["max"] == 5.0 and a["n"] == 5
    assert a["ci95_low"] <= a["mean"] <= a["ci95_high"] and a["ci95_low"] >= 1.0 and a["ci95_high"] <= 5.0
    # the bootstrap interval of the mean narrows like 1/sqrt(n)
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=10), rng.normal(size=1000)
    w_small = np.subtract(*reversed(bootstrap_ci(list(small))))
    w_large = np.subtract(*reversed(bootstrap_ci(list(large))))
    assert 5 < w_small / w_large < 20


def test_one_value_has_no_spread_nor_interval() -> None:
    """One seed's std and 95 % interval were written as 0 and [x, x] (review): they are unknown, null in
    report.json and '-' in the tables."""
    from gan_lightning.lab import _pm
    from gan_lightning.study import report_markdown

    a = aggregate([2.5])
    assert a["n"] == 1 and a["mean"] == 2.5 and a["std"] is None and a["ci95_low"] is None and a["ci95_high"] is None
    table = report_markdown(
        {
            "study": "s",
            "seeds": [0],
            "completed": [0],
            "final": {"fid": a},
            "wall_s": {},
            "g_iters_per_s": {},
            "per_seed": [],
        }
    )
    assert "| fid | 2.5 | - | 2.5 | 2.5 | 2.5 | - |" in table
    assert _pm({"mean": 2.5, "std": None, "n": 1}, 1) == "2.5"
    two = report_markdown(
        {
            "study": "s",
            "seeds": [0, 1],
            "completed": [0, 1],
            "final": {"kl": a},
            "wall_s": {},
            "g_iters_per_s": {},
            "per_seed": [],
        }
    )
    assert "| kl (1 of 2 seeds finite) | 2.5 |" in two  # the other seed's value was infinite


def test_compare_does_not_drop_the_seeds_without_a_finite_value(tmp_path) -> None:
    """A study whose 7 of 10 seeds had an infinite KL (written as null) was compared on its 3 finite ones and found
    no worse (review): such a metric is not tested, with a note saying how many seeds of each had no value."""
    for name, values in (("a", [None] * 7 + [0.30, 0.31, 0.32]), ("b", [0.30 + 0.01 * i for i in range(10)])):
        sdir = tmp_path / name
        sdir.mkdir()
        seeds = [{"seed": i, "status": "completed", "final": {"kl": v, "fid": 1.0 + i}} for i, v in enumerate(values)]
        final = {"kl": aggregate(values), "fid": aggregate([1.0 + i for i in range(10)])}
        (sdir / "report.json").write_text(json.dumps({"final": final, "per_seed": seeds}))
    result = compare_studies(tmp_path / "a", tmp_path / "b")
    kl = result["metrics"]["kl"]
    assert "welch_p" not in kl and not kl.get("differ") and (kl["non_finite_a"], kl["non_finite_b"]) == (7, 0)
    assert "7 of 10" in kl["note"]
    assert result["metrics"]["fid"]["n_a"] == 10  # the other metric is still compared


def test_read_summary(tmp_path) -> None:
    assert read_summary(tmp_path / "missing") is None
    (tmp_path / "summary.json").write_text('{"status": "comp')
    assert read_summary(tmp_path) is None  # half written
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert read_summary(tmp_path) is None  # not a summary
    (tmp_path / "summary.json").write_text('{"status": "completed", "steps_done": 3}')
    assert read_summary(str(tmp_path)) == {"status": "completed", "steps_done": 3}


def test_train_subprocess_runs_into_its_own_directory(tmp_path, monkeypatch) -> None:
    """A study's or sweep's train subprocess is a run of its own, never a DDP worker of its caller."""
    from tests.conftest import TINY

    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "stale"))
    log = tmp_path / "logs" / "t.log"
    code = run_train(["exp=gmm_ring", "steps=2", *TINY], tmp_path / "t", log, {"GAN_LIGHTNING_GROUP": "g"})
    assert code == 0, log.read_text()
    assert (read_summary(tmp_path / "t") or {}).get("status") == "completed" and not (tmp_path / "stale").exists()
    text = log.read_text()
    assert text.startswith(f"\n$ {sys.executable} -m gan_lightning train exp=gmm_ring steps=2 ") and "out=" in text
    assert run_train(["exp=gmm_ring", "steps=2", *TINY], tmp_path / "t", log) == 0  # appends; resume=auto: done
    assert log.read_text().count("\n$ ") == 2


def test_study_runs_resumes_and_reports(tmp_path, capsys) -> None:
    sdir = run_study([*QUICK, "seeds=0-2", "jobs=2", "reproducible=true", f"out={tmp_path / 'study'}"], echo=False)
    report = json.loads((sdir / "report.json").read_text())
    assert report["completed"] == [0, 1, 2] and len(report["per_seed"]) == 3
    agg = report["final"]["modes/covered"]
    assert agg["n"] == 3 and {"mean", "std", "median", "min", "max", "ci95_low", "ci95_high"} <= set(agg)
    values = [r["final"]["modes/covered"] for r in report["per_seed"]]
    assert agg["mean"] == pytest.approx(np.mean(values)) and report["wall_s"]["n"] == 3
    assert report["reproducibility"]["bitwise_equal"] is True
    a, b = report["reproducibility"]["weights_sha1"]
    assert a == b and a is not None
    for name in ("report.md", "curves.png", "finals.png"):
        assert (sdir / name).is_file(), name
    assert (
        "| modes/covered |" in (sdir / "report.md").read_text() and "bitwise equal" in (sdir / "report.md").read_text()
    )
    stamps = {s: (sdir / f"seed_{s}" / "summary.json").stat().st_mtime_ns for s in (0, 1, 2)}
    run_study([*QUICK, "seeds=0-2", f"out={tmp_path / 'study'}"], echo=False)  # rerun: no work
    assert stamps == {s: (sdir / f"seed_{s}" / "summary.json").stat().st_mtime_ns for s in (0, 1, 2)}


def test_study_resumes_an_interrupted_seed(tmp_path) -> None:
    sdir = tmp_path / "study"
    # A 30-step seed stopped at step 15 leaves what a 15-step run leaves, marked interrupted (with a constant lr: a
    # decayed 15-step run is not the first half of a 30-step one, and the study would refuse to extend it)
    run_study([*QUICK, "optim.schedule=constant", "steps=15", "seeds=0", f"out={sdir}"], echo=False)
    summary = sdir / "seed_0" / "summary.json"
    s = json.loads(summary.read_text())
    summary.write_text(json.dumps({**s, "status": "interrupted", "steps": 30}))
    run_study([*QUICK, "optim.schedule=constant", "steps=30", "seeds=0", f"out={sdir}"], echo=False)
    s = json.loads(summary.read_text())
    assert s["status"] == "completed" and s["steps_done"] == 30
    assert "at G step 15" in (sdir / "logs" / "seed_0.log").read_text()


def test_study_rejects_bad_config_before_running(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"model\.n_critic"):
        run_study(["exp=gmm_ring", "model.n_critc=2", "seeds=0", f"out={tmp_path / 's'}"], echo=False)
    assert not (tmp_path / "s").exists()


def fake_study(path, values: list[float]) -> None:
    path.mkdir(parents=True)
    per_seed = [{"seed": i, "status": "completed", "final": {"fid": v}} for i, v in enumerate(values)]
    (path / "report.json").write_text(json.dumps({"final": {"fid": {}}, "per_seed": per_seed}))


def test_compare_detects_a_difference_and_its_absence(tmp_path) -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b, c = list(rng.normal(10, 1, 8)), list(rng.normal(14, 1, 8)), list(rng.normal(10, 1, 8))
    for name, vals in (("a", a), ("b", b), ("c", c)):
        fake_study(tmp_path / name, vals)
    diff = compare_studies(tmp_path / "a", tmp_path / "b")["metrics"]["fid"]
    assert diff["differ"] and diff["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert diff["cohens_d"] < -2 and diff["prob_a_greater"] < 0.1
    same = compare_studies(tmp_path / "a", tmp_path / "c")["metrics"]["fid"]
    assert not same["differ"]


def command(*overrides: str) -> str:
    """A sweep's ``command:`` block (YAML block list: ``${...}`` cannot sit unquoted in a flow list)."""
    items = ["${env}", "${interpreter}", "-m", "gan_lightning", "train", *overrides, "${args_no_hyphens}"]
    return "command:\n" + "".join(f"  - {i}\n" for i in items)


def test_offline_sweep_runs_trials_and_writes_a_table(tmp_path) -> None:
    sweep = tmp_path / "toy.yaml"
    sweep.write_text(
        "method: random\nmetric: {name: modes/high_quality, goal: maximize}\n"
        "parameters:\n  optim.lr_d: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}\n"
        "  model.penalty.weight: {values: [0.1, 1.0]}\n" + command("exp=gmm_ring", "steps=20", "metrics.n=300")
    )
    os.environ["WANDB_MODE"] = "offline"
    sdir, rows = run_offline(sweep, 3, tmp_path / "sw", echo=False)
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    assert len({r["params"]["optim.lr_d"] for r in rows}) == 3
    for r in rows:
        cfg = (tmp_path / "sw" / r["trial"] / "config.yaml").read_text()
        assert f"lr_d: {r['params']['optim.lr_d']}" in cfg  # the override reached the config
    table = (sdir / "results.md").read_text()
    assert table.count("trial_") == 3 and "**best**" in table
    assert (sdir / "results.csv").read_text().count("\n") == 4
    from PIL import Image

    with Image.open(sdir / "results.png") as im:  # the metric against each varied parameter: two panels
        assert im.size == (2 * 360, 320)
    _again_dir, again = run_offline(sweep, 3, tmp_path / "sw", echo=False)  # resumes: nothing more to do
    assert [r["trial"] for r in again] == [r["trial"] for r in rows]


def test_grid_sweep_stops_when_the_grid_is_done(tmp_path) -> None:
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(
        "method: grid\nparameters:\n  model.z_dim: {values: [2, 3]}\n"
        + command("exp=gmm_ring", "steps=5", "metrics.names=[]")
    )
    _, rows = run_offline(sweep, 10, tmp_path / "g", echo=False)
    assert sorted(r["params"]["model.z_dim"] for r in rows) == [2, 3]


def test_sweep_with_a_bad_key_fails_before_any_trial(tmp_path) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("method: grid\nparameters:\n  optim.lr_dd: {values: [0.1]}\n" + command("exp=gmm_ring"))
    with pytest.raises(ConfigError, match=r"optim\.lr_d"):
        run_offline(sweep, 1, tmp_path / "b", echo=False)


def test_shipped_sweep_files_are_valid() -> None:
    from gan_lightning.config import experiments_dir
    from gan_lightning.sweep import check_keys, load_sweep

    files = sorted((experiments_dir() / "sweeps").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        check_keys(load_sweep(f))


def test_wandb_offline_logging(tmp_path, monkeypatch) -> None:
    """logger=csv,wandb in offline mode: a local wandb run with the scalars, images and summary."""
    from tests.helpers import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    result = run("exp=gmm_ring", "steps=4", "out=w", "logger=csv,wandb", "log.sample_every=4")
    runs = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert (result.run_dir / "metrics.csv").is_file()


def test_report_with_a_non_finite_seed_value_is_strict_json_and_a_table(tmp_path) -> None:
    """A seed whose final mode KL was infinite (written as null) is left out of the aggregate,
    shown as '-' in report.md, and every file stays strict JSON."""
    from gan_lightning.files import write_json
    from gan_lightning.study import write_report

    for seed, kl in ((0, None), (1, 0.25), (2, 0.5)):
        (tmp_path / f"seed_{seed}").mkdir()
        summary = {"status": "completed", "steps_done": 5, "final": {"modes/kl": kl, "modes/covered": 8}, "best": {}}
        write_json(tmp_path / f"seed_{seed}" / "summary.json", summary)
    report = write_report(tmp_path, [0, 1, 2])
    assert report["final"]["modes/kl"]["n"] == 2 and report["final"]["modes/kl"]["mean"] == 0.375
    strict = json.loads((tmp_path / "report.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert strict["per_seed"][0]["final"]["modes/kl"] is None
    assert "| 0 | completed | 8 | - |" in (tmp_path / "report.md").read_text()


def test_parallel_study_jobs_share_the_cores(tmp_path, monkeypatch) -> None:
    """jobs=K: each seed's process gets cores / K threads (oversubscribed OpenMP threads spin)."""
    from gan_lightning import study

    envs: dict[int, dict] = {}

    def fake_run_train(overrides, out, log, env=None):  # type: ignore[no-untyped-def]
        envs[int(next(a for a in overrides if a.startswith("seed="))[5:])] = dict(env or {})
        return 0

    monkeypatch.setattr(study, "run_train", fake_run_train)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    study.run_study(["exp=gmm_ring", "seeds=0-3", "jobs=4", f"out={tmp_path / 's'}"], echo=False)
    assert sorted(envs) == [0, 1, 2, 3] and all(e["OMP_NUM_THREADS"] == "2" for e in envs.values())
    envs.clear()
    study.run_study(["exp=gmm_ring", "seeds=0", f"out={tmp_path / 't'}"], echo=False)
    assert "OMP_NUM_THREADS" not in envs[0]  # one job: torch's own default (all cores)


def fake_seed_runs(monkeypatch, outcome) -> list[tuple[int, str]]:
    """Replace the seeds' training subprocess: ``outcome(seed, out)`` -> (status or None, exit code); a status
    writes that summary.json. Returns the (seed, run directory) of every call."""
    from gan_lightning import study

    calls: list[tuple[int, str]] = []

    def fake_run_train(overrides, out, log, env=None):  # type: ignore[no-untyped-def]
        seed = int(next(a for a in overrides if a.startswith("seed="))[5:])
        steps = int([a for a in overrides if a.startswith("steps=")][-1][6:])  # the tests give steps=
        calls.append((seed, str(out)))
        status, code = outcome(seed, out)
        if status:
            out.mkdir(parents=True, exist_ok=True)
            done = steps if status == "completed" else 1
            summary = {"status": status, "steps": steps, "steps_done": done, "final": {"fid": float(seed)}, "best": {}}
            (out / "summary.json").write_text(json.dumps(summary))
            (out / "checkpoints").mkdir(exist_ok=True)  # what a resume reads: its step and the run's steps
            state = {"gan_lightning": {"g_step": done, "config": {"steps": steps}}, "state_dict": {"w": torch.ones(1)}}
            torch.save(state, out / "checkpoints/last.ckpt")
        return code

    monkeypatch.setattr(study, "run_train", fake_run_train)
    return calls


def test_a_study_directory_refuses_other_overrides(tmp_path, monkeypatch) -> None:
    """Seeds done with lr 1e-3 were reported as lr 2e-3 runs (a sweep's best_study after a new winner)."""
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    out = f"out={tmp_path / 's'}"
    run_study(["exp=gmm_ring", "steps=2", "optim.lr_d=0.001", "seeds=0-1", out], echo=False)
    with pytest.raises(ConfigError, match=r"optim\.lr_d.*out=DIR"):
        run_study(["exp=gmm_ring", "steps=2", "optim.lr_d=0.002", "seeds=0-2", out], echo=False)
    run_study(["exp=gmm_ring", "steps=2", "optim.lr_d=0.001", "seeds=0-2", out], echo=False)  # the same, grown


def test_a_diverged_seed_is_an_outcome_not_a_retry(tmp_path, monkeypatch) -> None:
    """A diverged run resumed from its last checkpoint diverges again at the same step (resume is exact):
    a second call reruns nothing, and the report lists the seed as diverged."""
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("diverged", 3) if seed == 1 else ("completed", 0))
    sdir = run_study(["exp=gmm_ring", "steps=2", "seeds=0-1", f"out={tmp_path / 's'}"], echo=False)
    run_study(["exp=gmm_ring", "steps=2", "seeds=0-1", f"out={tmp_path / 's'}"], echo=False)
    assert sorted(seed for seed, _ in calls) == [0, 1]
    report = json.loads((sdir / "report.json").read_text())
    assert [r["status"] for r in report["per_seed"]] == ["completed", "diverged"]


def test_a_failed_reproducibility_run_still_writes_the_report(tmp_path, monkeypatch) -> None:
    """reproducible=true whose second run fails: the report says so (it raised FileNotFoundError, exit 2)."""
    fake_seed_runs(monkeypatch, lambda seed, out: (None, 1) if "reproducible" in str(out) else ("completed", 0))
    sdir = run_study(["exp=gmm_ring", "steps=2", "seeds=0", "reproducible=true", f"out={tmp_path / 's'}"], echo=False)
    report = json.loads((sdir / "report.json").read_text())
    assert report["completed"] == [0] and report["reproducibility"]["bitwise_equal"] is None
    assert "did not complete" in report["reproducibility"]["error"]


def test_a_grown_study_checks_reproducibility_at_its_new_steps(tmp_path, monkeypatch) -> None:
    """reproducible=true after a study grew by steps compared the two runs of the old length, done already."""
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    args = ["exp=gmm_ring", "optim.schedule=constant", "seeds=0", "reproducible=true", f"out={tmp_path / 's'}"]
    run_study([*args, "steps=2"], echo=False)
    sdir = run_study([*args, "steps=4"], echo=False)
    assert sorted(os.path.basename(out) for _, out in calls) == ["a", "a", "b", "b", "seed_0", "seed_0"]
    repro = json.loads((sdir / "report.json").read_text())["reproducibility"]
    assert repro["bitwise_equal"] is True and repro["steps_done"] == 4


def test_sweep_study_seeds_studies_the_winner_in_its_own_directory_and_fails_with_its_seeds(
    tmp_path, monkeypatch
) -> None:
    """--study-seeds: the best configuration's study goes to a directory named by it (a later winner gets its
    own, not the old one's seeds), and the command's exit code says when its seeds did not complete."""
    from gan_lightning import sweep
    from gan_lightning.cli import main

    def trial(overrides, out, log, env=None):  # type: ignore[no-untyped-def]
        z = int(next(a for a in overrides if a.startswith("model.z_dim="))[12:])
        out.mkdir(parents=True, exist_ok=True)
        best = {"fid": {"value": float(z), "step": 2}}
        (out / "summary.json").write_text(json.dumps({"status": "completed", "steps": 2, "best": best}))
        return 0

    monkeypatch.setattr(sweep, "run_train", trial)
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0) if seed == 0 else ("diverged", 3))
    spec = tmp_path / "grid.yaml"
    spec.write_text(
        "method: grid\nmetric: {name: fid, goal: minimize}\nparameters:\n  model.z_dim: {values: [3, 2]}\n"
        + command("exp=gmm_ring", "steps=2")
    )
    code = main(["sweep", str(spec), "--offline", "--out", str(tmp_path / "sw"), "--study-seeds", "0-1"])
    assert code == 1  # seed 1 diverged
    (study_dir,) = {os.path.dirname(out) for _, out in calls}
    assert os.path.basename(study_dir).startswith("best_study_")
    assert json.loads((tmp_path / "sw" / os.path.basename(study_dir) / "study.json").read_text())["overrides"][
        -1
    ].endswith("model.z_dim=2")


def test_a_grown_study_counts_only_the_seeds_that_reached_its_steps(tmp_path, monkeypatch) -> None:
    """A seed whose extension failed before training kept its old summary (completed at the shorter steps): it
    was counted and averaged with the longer seeds. Now it is listed as short and left out of the figures."""
    calls = fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0))
    out = f"out={tmp_path / 's'}"
    args = ["exp=gmm_ring", "optim.schedule=constant", "seeds=0-2", out]
    run_study([*args, "steps=2"], echo=False)
    fake_seed_runs(monkeypatch, lambda seed, out: ("completed", 0) if seed != 1 else (None, 1))  # seed 1 fails
    run_study([*args, "steps=4"], echo=False)
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["completed"] == [0, 2] and report["final"]["fid"]["n"] == 2
    assert report["final"]["fid"]["mean"] == 1.0  # the fake's fid is the seed: seeds 0 and 2, not seed 1's 1.0 too
    (short,) = [r for r in report["per_seed"] if r["seed"] == 1]
    assert short["status"] == "short" and short["steps_done"] == 2 and len(calls) == 3


def test_a_study_check_of_an_extension_reads_the_seeds_checkpoints(tmp_path, monkeypatch) -> None:
    """A seed killed without a summary (SIGKILL, an OOM kill) still has the checkpoint its resume will start
    from: the study's refusal of a schedule-changing extension must read that, not summary.json."""
    from gan_lightning.study import refuse_schedule_changing_extensions

    cfg = load_config(["exp=gmm_ring", "steps=20"])  # linear decay after 0.7 x steps
    ckpts = tmp_path / "s" / "seed_0" / "checkpoints"
    ckpts.mkdir(parents=True)
    torch.save({"gan_lightning": {"g_step": 9, "config": {"steps": 10}}}, ckpts / "last.ckpt")  # decay from 7
    with pytest.raises(ConfigError, match=r"seeds 0 cannot grow: steps=20 changes the learning rate"):
        refuse_schedule_changing_extensions(tmp_path / "s", [0, 1], cfg)
    torch.save({"gan_lightning": {"g_step": 7, "config": {"steps": 10}}}, ckpts / "last.ckpt")  # none decayed
    refuse_schedule_changing_extensions(tmp_path / "s", [0, 1], cfg)


def test_a_study_grown_to_more_steps_extends_its_finished_seeds(tmp_path, monkeypatch) -> None:
    """A larger steps may grow a study (as a resume extends a run), but every seed must then reach it: seeds
    finished at 2,000 steps were reported beside a new seed at 4,000. Fewer steps, or other metrics, are
    another configuration: refused."""

    def outcome(seed, out):  # type: ignore[no-untyped-def]
        return ("completed", 0)

    calls = fake_seed_runs(monkeypatch, outcome)
    out = f"out={tmp_path / 's'}"
    run_study(["exp=gmm_ring", "steps=2", "seeds=0-1", out], echo=False)
    # the fake writes steps 2 / steps_done 2; a study at steps=4 must run seeds 0 and 1 again (to extend them)
    run_study(["exp=gmm_ring", "steps=4", "seeds=0-2", out], echo=False)
    assert sorted(seed for seed, _ in calls) == [0, 0, 1, 1, 2]
    for bad in ("steps=1", "metrics.n=100"):
        with pytest.raises(ConfigError, match=r"other overrides"):
            run_study(["exp=gmm_ring", "steps=4", bad, "seeds=0-2", out], echo=False)
    # gmm_ring's lr decays after 0.7 x steps: its seeds done at 4 steps used a decayed lr that a study at 8 steps
    # does not (decay from step 5), so growing them would mix two schedules in each seed: refused before any run
    with pytest.raises(ConfigError, match=r"seeds 0, 1, 2 .*learning rate.* out=") as no:
        run_study(["exp=gmm_ring", "steps=8", "seeds=0-2", out], echo=False)
    assert "steps=8" in str(no.value) and len(calls) == 5
    assert json.loads((tmp_path / "s" / "study.json").read_text())["steps"] == 4  # nothing was written


def test_a_sweep_metric_nothing_logs_is_refused_with_the_near_miss() -> None:
    """`metric: {name: modes/high_qualty}` was accepted and every trial ran unranked (no best trial)."""
    from gan_lightning.sweep import check_goal

    with pytest.raises(ConfigError, match=r"'modes/high_qualty'.*did you mean modes/high_quality"):
        check_goal({"metric": {"name": "modes/high_qualty", "goal": "maximize"}})
    check_goal({"metric": {"name": "ab/fid", "goal": "minimize"}})  # translation metrics: <direction>/<measure>
    with pytest.raises(ConfigError, match="maximize"):
        check_goal({"metric": {"name": "ab/ssim", "goal": "minimize"}})


def test_a_sweep_folder_holding_another_sweep_is_refused(tmp_path) -> None:
    """A second sweep file (other steps, another metric) run into the same --out ranked the first one's trials
    as its own."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    body = "method: grid\nparameters:\n  model.z_dim: {values: [2]}\n"
    first.write_text(body + command("exp=gmm_ring", "steps=5", "metrics.names=[]"))
    second.write_text(body + command("exp=gmm_ring", "steps=6", "metrics.names=[]"))
    run_offline(first, 1, tmp_path / "sw", echo=False)
    with pytest.raises(ConfigError, match="another sweep"):
        run_offline(second, 1, tmp_path / "sw", echo=False)
    _, rows = run_offline(first, 1, tmp_path / "sw", echo=False)  # the same sweep again: resumed
    assert len(rows) == 1


def test_a_done_seed_of_an_edited_experiment_file_is_refused(tmp_path, monkeypatch) -> None:
    """A study's identity was its override text (review): after an experiment file changed, its done seeds were
    reported beside new seeds of the new config. A done seed's stored config is now compared with the config the
    study resolves to for it; steps and log.* may differ."""
    from gan_lightning.config import to_yaml

    def outcome(seed, out):  # type: ignore[no-untyped-def]
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(to_yaml(load_config([f"exp={exp}", "steps=2", f"seed={seed}"])))
        return "completed", 0

    calls = fake_seed_runs(monkeypatch, outcome)
    exp = tmp_path / "myexp.yaml"
    exp.write_text("model: {name: gan}\nnets: {g: mlp, d: mlp}\ndata: {name: toy}\noptim: {lr_g: 0.002}\n")
    out = f"out={tmp_path / 's'}"
    run_study([f"exp={exp}", "steps=2", "seeds=0", out], echo=False)
    run_study([f"exp={exp}", "steps=2", "seeds=0", "log.every=7", out], echo=False)  # may change: no error
    exp.write_text("model: {name: gan}\nnets: {g: mlp, d: mlp}\ndata: {name: toy}\noptim: {lr_g: 0.001}\n")
    with pytest.raises(ConfigError, match=r"(?s)optim\.lr_g: 0\.002 when it ran, 0\.001 now.*out=DIR"):
        run_study([f"exp={exp}", "steps=2", "seeds=0-1", out], echo=False)
    assert [seed for seed, _ in calls] == [0]  # seed 1 never ran under the new file


def test_an_offline_sweep_folder_is_locked_and_an_unreadable_results_file_is_refused(tmp_path) -> None:
    """Two sweeps into one folder each rewrote results.json, ranking a trial as 'locked' that had completed, and
    a cut results.json was a traceback (review): the folder is locked for the sweep, and a bad file is one line."""
    from gan_lightning.rundir import RunLock

    sweep = tmp_path / "toy.yaml"
    sweep.write_text(
        "method: random\nmetric: {name: modes/high_quality, goal: maximize}\n"
        "parameters:\n  optim.lr_d: {values: [1.0e-3, 2.0e-3]}\n" + command("exp=gmm_ring", "steps=20")
    )
    sdir = tmp_path / "sw"
    with RunLock(sdir, what="sweep"), pytest.raises(ConfigError, match="sweep"):
        run_offline(sweep, 1, sdir, echo=False)
    assert not (sdir / "results.json").exists() and not (sdir / "trial_000").exists()
    sdir.mkdir(exist_ok=True)
    (sdir / "results.json").write_text('{"rows": [')
    with pytest.raises(ConfigError, match=r"results\.json.*--out"):
        run_offline(sweep, 1, sdir, echo=False)
    (sdir / "results.json").write_text("[]")
    with pytest.raises(ConfigError, match=r"results\.json.*--out"):
        run_offline(sweep, 1, sdir, echo=False)


def test_a_seeds_error_keeps_its_whole_message(tmp_path) -> None:
    """A refused resume's message lists the changed keys and the fix on the lines after 'error: ...'; the report
    kept the first line only (review)."""
    from gan_lightning.rundir import last_error

    log = tmp_path / "seed_0.log"
    log.write_text(
        "$ old command\nerror: an older error\n"
        "$ gan-lightning train ...\nsome progress\n"
        "error: resuming last.ckpt would change the run's config:\n  optim.lr_g: 0.002 in the checkpoint, 0.001 now\n"
        "Only steps, log.* may change on resume.\n"
    )
    assert last_error(log) == (
        "resuming last.ckpt would change the run's config:\n  optim.lr_g: 0.002 in the checkpoint, 0.001 now\n"
        "Only steps, log.* may change on resume."
    )


def test_ctrl_c_in_a_study_writes_its_report_and_exits_130(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C ended a study with a KeyboardInterrupt traceback, exit 1 and no report (review): the finished seeds'
    report is written and the command exits 130, as `train` does."""
    from gan_lightning.cli import main

    def outcome(seed, out):  # type: ignore[no-untyped-def]
        if seed == 1:
            raise KeyboardInterrupt
        return "completed", 0

    fake_seed_runs(monkeypatch, outcome)
    sdir = tmp_path / "s"
    assert main(["study", "exp=gmm_ring", "steps=2", "seeds=0-1", f"out={sdir}"]) == 130
    report = json.loads((sdir / "report.json").read_text())
    assert report["completed"] == [0] and "interrupted" in capsys.readouterr().err
