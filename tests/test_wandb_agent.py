"""wandb without network: a trial started by `wandb agent` (the agent's environment simulated,
WANDB_MODE=offline), a resumed run continuing its wandb run, the sweep file checks. The offline
runs are read back from their `.wandb` files (wandb's record log of protobuf records)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gan_lightning.registry import ConfigError
from gan_lightning.rundir import read_summary
from gan_lightning.sweep import check_keys, load_sweep, rank_value
from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group("subprocess_runs")

SHORT = ["steps=30", "log.every=10", "log.sample_every=15", "metrics.every=15", "metrics.n=500"]


# ----------------------------------------------------------------------------- reading an offline run
def records(path: Path) -> Iterator[Any]:
    """The protobuf records of a `.wandb` file: a 7-byte header (':W&B', magic, version), then
    LevelDB-log chunks (crc32, length, type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """{'id', 'history': [rows], 'summary': {...}, 'metrics': [MetricRecord]} of a `.wandb` file.
    Offline, wandb's service may write the file after ``run.finish()`` returns (a run read at once
    was seen empty): ``wandb.teardown()`` waits for it."""
    import wandb

    def key(item: Any) -> str:
        return "/".join(item.nested_key) if item.nested_key else item.key

    wandb.teardown()
    (path,) = run_dir.glob("*.wandb")
    out: dict[str, Any] = {"id": None, "history": [], "summary": {}, "metrics": []}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["id"] = r.run.run_id
        elif kind == "history":
            out["history"].append({key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out["summary"].update({key(i): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "metric":
            out["metrics"].append(r.metric)
    return out


def image_keys(run: dict[str, Any]) -> set[str]:
    """The keys logged as images: a dict whose '_type' is 'image-file' (one wandb.Image) or
    'images/separated' (a list of them, as Lightning's ``log_image`` logs)."""
    kinds = ("image-file", "images/separated")
    return {
        k[: -len("/_type")] for row in run["history"] for k, v in row.items() if k.endswith("/_type") and v in kinds
    }


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """wandb offline and silent, its directories under tmp_path, no agent variables; wandb's
    process-wide settings (read from the environment once) are reset before and after."""
    import wandb

    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path / "wandb_dir"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
    }
    for value in env.values():
        if value.startswith(str(tmp_path)):
            Path(value).mkdir(parents=True, exist_ok=True)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH", "GAN_LIGHTNING_SWEEP_METRIC"):
        monkeypatch.delenv(k, raising=False)
    wandb.teardown()
    yield env
    wandb.teardown()


# ----------------------------------------------------------------------------- the agent path
def agent_command(sweep_file: Path, args: dict[str, Any]) -> list[str]:
    """The command `wandb agent` runs for a trial of ``sweep_file`` with ``args``, built by wandb's
    own macro expansion (${env} left out: the environment is passed directly)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    macros = create_sweep_command_args({"args": {k: {"value": v} for k, v in args.items()}})
    macros.update({"env": [], "interpreter": [sys.executable], "program": ["gan-lightning"]})
    words: list[str] = []
    for word in (str(w) for w in load_sweep(sweep_file)["command"]):
        words += macros.get(word[2:-1], []) if word.startswith("${") else [word]
    return words


def test_an_agent_trial_logs_the_sweep_metric_to_its_wandb_run(tmp_path, wandb_offline) -> None:
    """The shipped gmm_ring_lr sweep (logger=csv in its command) as the agent runs a trial: the
    trial logs to wandb as the agent's run, with the sweep metric (and every metric) in its summary
    at the value the offline driver ranks by, its history against g_step, its plots as images."""
    from wandb.sdk.lib.config_util import save_config_file_from_dict

    sweep_file = REPO / "experiments" / "sweeps" / "gmm_ring_lr.yaml"
    sweep = load_sweep(sweep_file)
    metric = sweep["metric"]["name"]
    assert "logger=csv" in sweep["command"]  # wandb is not asked for: the agent path adds it
    # the sampled parameters, plus overrides that shorten the trial (passed the same way)
    args: dict[str, Any] = {"optim.lr_d": 0.001, "optim.lr_g": 0.0005, "model.penalty.weight": 1.0}
    args.update(dict(a.split("=", 1) for a in [*SHORT, "log.progress=false"]))
    params = tmp_path / "wandb_dir" / "wandb" / "sweep-fake" / "config-abc123xy.yaml"
    params.parent.mkdir(parents=True)
    save_config_file_from_dict(str(params), {k: {"value": v} for k, v in args.items()})
    env = {
        **os.environ,
        **wandb_offline,
        "WANDB_SWEEP_ID": "fake",
        "WANDB_RUN_ID": "abc123xy",
        "WANDB_PROJECT": "p",
        "WANDB_SWEEP_PARAM_PATH": str(params),
        "GAN_LIGHTNING_SWEEP_METRIC": metric,
        "OMP_NUM_THREADS": "1",
    }
    cmd = agent_command(sweep_file, args)
    assert cmd[-len(args) :] == [f"{k}={v}" for k, v in args.items()]  # ${args_no_hyphens}: key=value
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no value of the sweep's metric" not in out.stderr

    (run_dir,) = (tmp_path / "runs" / "gmm_ring").iterdir()
    summary = read_summary(run_dir)
    assert summary and summary["status"] == "completed" and summary["wandb_id"] == "abc123xy"
    assert (run_dir / "wandb_id").read_text().strip() == "abc123xy"
    (offline,) = (run_dir / "wandb").glob("offline-run-*-abc123xy")
    run = read_offline_run(offline)
    assert run["id"] == "abc123xy"

    value = rank_value(summary, metric)
    assert value is not None and run["summary"][metric] == pytest.approx(value)
    for key in summary["best"]:  # every metric's summary value is its ranking value
        assert run["summary"][key] == pytest.approx(rank_value(summary, key))
    # wandb's engine takes the extremum over history + summary: the same value (goal: maximize)
    logged = [row[metric] for row in run["history"] if metric in row]
    assert len(logged) == 2 and max(logged) == pytest.approx(value)
    # every row against the G step; the metrics defined by name keep that axis
    assert all("g_step" in row for row in run["history"])
    assert sorted({row["g_step"] for row in run["history"] if metric in row}) == [15, 30]
    assert {m.step_metric for m in run["metrics"] if m.name == metric} == {"g_step"}
    # the toy scatter plots and the run's curves as images
    assert {"samples", "curves"} <= image_keys(run)
    assert run["summary"]["run/status"] == "completed"


# ----------------------------------------------------------------------------- resume
def test_a_resumed_run_continues_its_wandb_run(tmp_path, wandb_offline) -> None:
    """Two sessions (20 G steps, then resume=auto to 40) write two offline runs with one id; the
    second logs from G step 21 on, and its summary holds the best over both sessions."""
    from tests.helpers import run

    common = ["exp=gmm_ring", "out=r", "logger=csv,wandb", "metrics.every=10", "metrics.n=300"]
    first = run(*common, "steps=20", "log.sample_every=10")
    stored = (first.run_dir / "wandb_id").read_text().strip()
    assert first.summary["wandb_id"] == stored
    second = run(*common, "steps=40", "log.sample_every=10", "resume=auto")
    assert second.summary["status"] == "completed" and second.summary["steps_done"] == 40
    assert second.summary["resumed_from"] and second.summary["wandb_id"] == stored

    sessions = sorted((second.run_dir / "wandb").glob("offline-run-*"))
    assert len(sessions) == 2  # the first session's wandb run was finished, not reused in-process
    runs = [read_offline_run(s) for s in sessions]
    assert [r["id"] for r in runs] == [stored, stored]
    steps = [[row["g_step"] for row in r["history"]] for r in runs]
    assert max(steps[0]) == 20 and min(steps[1]) > 20 and max(steps[1]) == 40
    for key in second.summary["best"]:
        assert runs[1]["summary"][key] == pytest.approx(rank_value(second.summary, key))


# ----------------------------------------------------------------------------- the sweep file
def write_sweep(tmp_path: Path, metric: str, goal: str, command: bool = True) -> Path:
    path = tmp_path / "s.yaml"
    text = f"method: random\nmetric: {{name: {metric}, goal: {goal}}}\nparameters:\n  optim.lr_d: {{values: [0.001]}}\n"
    if command:
        items = ["${env}", "${interpreter}", "-m", "gan_lightning", "train", "exp=gmm_ring", "${args_no_hyphens}"]
        text += "command:\n" + "".join(f"  - {i}\n" for i in items)
    path.write_text(text)
    return path


def test_the_sweep_goal_must_agree_with_the_metric_direction(tmp_path) -> None:
    check_keys(load_sweep(write_sweep(tmp_path, "modes/high_quality", "maximize")))
    check_keys(load_sweep(write_sweep(tmp_path, "raw/modes/kl", "minimize")))
    with pytest.raises(ConfigError, match="goal must be 'maximize'"):
        check_keys(load_sweep(write_sweep(tmp_path, "modes/high_quality", "minimize")))
    with pytest.raises(ConfigError, match="no direction"):
        check_keys(load_sweep(write_sweep(tmp_path, "kid_std", "minimize")))
    with pytest.raises(ConfigError, match="args_no_hyphens"):
        load_sweep(write_sweep(tmp_path, "fid", "minimize", command=False))


def test_rank_value_is_the_best_value() -> None:
    summary = {"final": {"fid": 30.0, "step": 100}, "best": {"fid": {"value": 20.0, "step": 50}}}
    assert rank_value(summary, "fid") == 20.0
    assert rank_value(summary, "kid") is None and rank_value(None, "fid") is None


# ----------------------------------------------------------------------------- study plots
def test_study_plots_reach_wandb_as_images(tmp_path, wandb_offline) -> None:
    """A study's plots as images of one wandb run in the study's directory, the same run again
    when the study reports again."""
    import torch

    from gan_lightning.callbacks.samples import save_grid
    from gan_lightning.wandb_utils import log_study_plots

    sdir = tmp_path / "study"
    for name in ("curves", "finals"):
        save_grid(torch.rand(4, 3, 8, 8), sdir / f"{name}.png")
    for _ in range(2):
        log_study_plots(sdir, "gmm_ring", [sdir / "curves.png", sdir / "finals.png", sdir / "absent.png"])
    runs = [read_offline_run(d) for d in sorted((sdir / "wandb").glob("offline-run-*"))]
    assert len(runs) == 2 and {r["id"] for r in runs} == {(sdir / "wandb_id").read_text().strip()}
    assert image_keys(runs[0]) == {"study/curves", "study/finals"}
