"""One process per run directory: a lock held for the run's whole life, stale locks taken over."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lightning.registry import ConfigError
from gan_lightning.rundir import LOCK_NAME, RUN_DIR_ENV, RunLock
from gan_lightning.study import run_study
from tests.conftest import TINY
from tests.helpers import run

pytestmark = pytest.mark.xdist_group("subprocess_runs")


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gan_lightning", "train", "exp=gmm_ring", *TINY, *args]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_process_on_a_running_directory_fails_naming_the_holder(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        train_cmd("steps=100000", "log.every=10", "out=D"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        metrics = tmp_path / "D" / "metrics.csv"
        deadline = time.time() + 180
        while time.time() < deadline and first.poll() is None and not metrics.is_file():
            time.sleep(0.2)
        assert metrics.is_file(), "the first run never started"
        second = subprocess.run(
            train_cmd("steps=3", "seed=1", "out=D"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert "lock" in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=180)
    assert first.returncode == 130, out
    summary = json.loads((tmp_path / "D" / "summary.json").read_text())
    assert summary["seed"] == 0 and summary["status"] == "interrupted"
    assert not (tmp_path / "D" / LOCK_NAME).exists()  # released on the way out


def test_a_held_lock_refuses_a_run_and_a_stale_one_is_taken_over(capfd: pytest.CaptureFixture[str]) -> None:
    holder = re.escape(f"locked by pid {os.getpid()} on {socket.gethostname()}")
    with RunLock(Path("held")), pytest.raises(ConfigError, match=holder):
        run("exp=gmm_ring", "steps=2", "out=held")
    Path("stale").mkdir()
    pid = dead_pid()
    (Path("stale") / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    result = run("exp=gmm_ring", "steps=2", "out=stale")
    assert result.status == "completed"
    err = capfd.readouterr().err
    assert "stale lock" in err and f"pid {pid}" in err
    assert not (Path("stale") / LOCK_NAME).exists()


def test_the_lock_is_released_on_a_failure_and_skipped_by_ddp_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="fid"):  # fails while building the evaluator
        run("exp=gmm_ring", "steps=2", "out=failed", "metrics.names=[fid]")
    assert not (Path("failed") / LOCK_NAME).exists()
    assert run("exp=gmm_ring", "steps=2", "out=failed").status == "completed"
    with RunLock(Path("ranks")):  # rank 0 holds it; a worker of that run must not wait for it
        monkeypatch.setenv(RUN_DIR_ENV, "ranks")
        assert run("exp=gmm_ring", "steps=2").status == "completed"


def test_a_second_study_on_a_running_seed_gets_the_lock_error(tmp_path: Path) -> None:
    sdir = tmp_path / "study"
    with RunLock(sdir / "seed_0"):  # a first study's seed 0 in flight
        run_study(["exp=gmm_ring", *TINY, "steps=2", "seeds=0", f"out={sdir}"], echo=False)
        log = (sdir / "logs" / "seed_0.log").read_text()
        assert f"locked by pid {os.getpid()}" in log
        assert not (sdir / "seed_0" / "checkpoints").exists()
    report = json.loads((sdir / "report.json").read_text())
    assert report["completed"] == [] and f"locked by pid {os.getpid()}" in report["per_seed"][0]["error"]


def test_a_second_study_on_the_same_directory_is_refused_and_its_report_kept(tmp_path: Path) -> None:
    """A second process on a study in flight would rewrite its report.json: refused at once."""
    sdir = tmp_path / "study"
    sdir.mkdir()
    (sdir / "report.json").write_text('{"mine": true}')
    with (
        RunLock(sdir, what="study"),
        pytest.raises(ConfigError, match=rf"study directory .* locked by pid {os.getpid()}"),
    ):
        run_study(["exp=gmm_ring", *TINY, "steps=2", "seeds=0", f"out={sdir}"], echo=False)
    assert json.loads((sdir / "report.json").read_text()) == {"mine": True}
    assert not (sdir / "seed_0").exists()


def test_study_exit_code_says_whether_every_seed_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gan_lightning import study
    from gan_lightning.cli import main

    real = study.run_train

    def seed_1_fails(overrides, out, log, env):  # type: ignore[no-untyped-def]
        if "seed=1" in overrides:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            Path(log).write_text("error: simulated failure of seed 1\n")
            return 1
        return real(overrides, out, log, env)

    monkeypatch.setattr(study, "run_train", seed_1_fails)
    sdir = tmp_path / "study"
    assert main(["study", "exp=gmm_ring", *TINY, "steps=2", "seeds=0-1", f"out={sdir}"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 seeds did not complete" in err and "seed 1" in err
    assert json.loads((sdir / "report.json").read_text())["completed"] == [0]  # the report is still written
    monkeypatch.setattr(study, "run_train", real)
    assert main(["study", "exp=gmm_ring", *TINY, "steps=2", "seeds=0-1", f"out={sdir}"]) == 0  # rerun completes
