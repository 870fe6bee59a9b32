"""Study launchers: local jobs get a GPU each, round-robin; submitit runs the seeds as a job array
(its local executor here) into the same run directories and report."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from gan_lightning import study
from gan_lightning.registry import ConfigError

pytestmark = pytest.mark.xdist_group("subprocess_runs")

QUICK = ["exp=gmm_ring", "steps=20", "log.every=10", "log.sample_every=20", "metrics.every=10", "metrics.n=300"]


def test_local_jobs_get_one_gpu_each_round_robin(tmp_path: Path, monkeypatch) -> None:
    """4 GPUs, jobs=4, 8 seeds: runs at the same moment never share a GPU, and every GPU is used."""
    monkeypatch.setattr(study, "visible_gpus", lambda: [0, 1, 2, 3])
    lock, running, seen, clashes = threading.Lock(), set(), [], []

    def fake_run_train(overrides, out, log, env):
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            if gpu in running:
                clashes.append(gpu)
            running.add(gpu)
            seen.append(gpu)
        time.sleep(0.05)
        with lock:
            running.discard(gpu)
        Path(out).mkdir(parents=True, exist_ok=True)
        return 0

    monkeypatch.setattr(study, "run_train", fake_run_train)
    monkeypatch.setattr(study, "write_report", lambda *a, **k: None)
    study.run_study([*QUICK, "seeds=0-7", "jobs=4", f"out={tmp_path / 's'}"], echo=False)
    assert clashes == [] and sorted(set(seen)) == ["0", "1", "2", "3"] and len(seen) == 8
    # more jobs than GPUs: two runs per GPU at most
    slots = study.gpu_slots(8, [0, 1, 2, 3])
    assert sorted(slots.get() for _ in range(8)) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert study.gpu_slots(2, []).get() is None  # a CPU machine: no CUDA_VISIBLE_DEVICES set


def test_submitit_launcher_runs_the_seed_array_resumably_and_reports(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    sdir = tmp_path / "s"
    study.run_study([*QUICK, "seeds=0-1", "launcher=submitit", "cluster=local", f"out={sdir}"], echo=False)
    report = json.loads((sdir / "report.json").read_text())
    assert report["completed"] == [0, 1]
    for seed in (0, 1):
        summary = json.loads((sdir / f"seed_{seed}" / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps_done"] == 20 and summary["seed"] == seed
    assert any((sdir / "submitit").iterdir())  # submitit's own job files
    # the same as a local study: seed 0 from submitit equals seed 0 run locally, bitwise
    local = tmp_path / "local"
    study.run_study([*QUICK, "seeds=0", f"out={local}"], echo=False)
    sha = [json.loads((d / "seed_0" / "summary.json").read_text())["weights_sha1"] for d in (sdir, local)]
    assert sha[0] == sha[1]
    # rerun: completed seeds are not submitted again
    before = sorted(p.name for p in (sdir / "submitit").iterdir())
    study.run_study([*QUICK, "seeds=0-1", "launcher=submitit", "cluster=local", f"out={sdir}"], echo=False)
    assert sorted(p.name for p in (sdir / "submitit").iterdir()) == before


def test_unknown_launcher_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"launcher.*local, submitit"):
        study.run_study([*QUICK, "seeds=0", "launcher=slurmm", f"out={tmp_path / 's'}"], echo=False)
    assert not (tmp_path / "s").exists()


def test_gpus_handed_out_are_the_parents_visible_ones(monkeypatch) -> None:
    """A parent restricted to GPUs 2,3 must hand its seeds 2 and 3, not positions 0 and 1."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert study.visible_gpus() == ["2", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert study.visible_gpus() == ["0", "1"]


def test_seeds_that_ask_for_several_devices_are_not_pinned_to_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(study, "visible_gpus", lambda: ["0", "1"])
    envs = []

    def fake_run_train(overrides, out, log, env):
        envs.append(env)
        return 0

    monkeypatch.setattr(study, "run_train", fake_run_train)
    monkeypatch.setattr(study, "write_report", lambda *a, **k: None)
    study.run_study([*QUICK, "seeds=0", "trainer.devices=2", f"out={tmp_path / 's'}"], echo=False)
    assert "CUDA_VISIBLE_DEVICES" not in envs[0]  # the run's own DDP takes both GPUs
