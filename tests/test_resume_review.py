"""Resuming: what a review of 2026-11-28 found (each test failed before its fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.optim import lazy_adjusted
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights
from tests.test_resume import SignalAt


def test_a_stop_on_a_kept_step_still_keeps_it() -> None:
    """The stop saved last.ckpt and returned before the keep_every save: step=N.ckpt was never written."""
    args = ["exp=gmm_ring", "steps=12", "log.keep_every=5"]
    part = run(*args, "out=part", extra_callbacks=[SignalAt(5)])
    assert part.status == "interrupted" and (part.run_dir / "checkpoints" / "step=5.ckpt").is_file()
    run(*args, "out=part", "resume=auto")
    assert {p.name for p in (part.run_dir / "checkpoints").glob("step=*.ckpt")} == {"step=5.ckpt", "step=10.ckpt"}


def test_a_stop_at_the_last_step_is_a_completed_run() -> None:
    result = run("exp=gmm_ring", "steps=6", "out=a", extra_callbacks=[SignalAt(6)])
    assert result.status == "completed" and result.summary["steps_done"] == 6


def test_resume_auto_without_last_ckpt_resumes_the_newest_kept_step() -> None:
    """A run killed before its first last.ckpt (keep_every < ckpt_every) was started again from scratch, over its
    kept checkpoints, best.ckpt and metrics.csv."""
    args = ["exp=gmm_ring", "steps=12", "log.keep_every=4", "log.ckpt_every=1000", "log.every=1"]
    full = run(*args, "out=full")
    run(*args, "out=part")
    ckpts = Path("part") / "checkpoints"
    for name in ("last.ckpt", "step=12.ckpt"):  # what a SIGKILL after step 8 leaves
        (ckpts / name).unlink()
    with pytest.raises(ConfigError, match=r"already holds a run.*resume=auto"):
        run(*args, "out=part")  # without resume=auto: refused, not a fresh start over it
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.summary["resumed_from"].endswith("step=8.ckpt") and resumed.summary["steps_done"] == 12
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    rows = [line.split(",")[0] for line in (Path("part") / "metrics.csv").read_text().splitlines()[1:]]
    assert rows == [str(s) for s in range(1, 13)]


def test_an_override_of_the_lazy_interval_reaches_the_optimizer() -> None:
    """lazy_adjust's lr and betas follow model.penalty.every, but only steps= and optim.* re-applied them."""
    base = ["exp=gmm_ring", "optim.schedule=constant", "optim.lazy_adjust=true", "out=a", "steps=8"]
    run(*base, "model.penalty.every=4", extra_callbacks=[SignalAt(4)])  # the same steps: only the interval changes
    run(*base, "model.penalty.every=2", "resume=auto", "resume_override=true")
    ckpt = torch.load(Path("a") / "checkpoints" / "last.ckpt", weights_only=True)
    group = ckpt["optimizer_states"][1]["param_groups"][0]  # D's
    cfg = load_config(["exp=gmm_ring"])
    lr, o = lazy_adjusted(float(cfg.optim.lr_d), cfg.optim, 2)
    assert group["lr"] == pytest.approx(lr) and tuple(group["betas"]) == pytest.approx(tuple(o.betas))


def test_another_optimizer_on_resume_is_refused_even_with_resume_override() -> None:
    """Adam's state loaded into RMSprop failed with a KeyError after changes.jsonl had recorded the change."""
    run("exp=gmm_ring", "steps=4", "out=a")
    with pytest.raises(ConfigError, match=r"optim\.name.*out=DIR"):
        run("exp=gmm_ring", "steps=6", "out=a", "resume=auto", "optim.name=rmsprop", "resume_override=true")
    assert "name: adam" in (Path("a") / "config.yaml").read_text() and not (Path("a") / "changes.jsonl").exists()
    assert json.loads((Path("a") / "summary.json").read_text())["status"] == "completed"
