"""Exact resume and same-seed repeatability, bitwise on CPU; signals and divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from gan_lightning.optim import first_changed_lr_step, lr_factor
from gan_lightning.registry import ConfigError
from tests.conftest import REPO, TINY
from tests.helpers import assert_bitwise_equal, run, weights


class SignalAt(L.Callback):
    """Sends this process a real signal at the end of G step k (the handler then finishes the step)."""

    def __init__(self, step: int, sig: int = signal.SIGINT):
        self.step, self.sig = step, sig

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.g_step == self.step:
            os.kill(os.getpid(), self.sig)


CASES = {
    # toy MLP with R1, EMA and a linear-decay schedule
    "gmm_ring": ["exp=gmm_ring"],
    # conv nets with BatchNorm, Fashion-MNIST-format data, n_critic 5 and the gradient penalty
    "wgan_gp": ["exp=wgan_gp", "data=fashion_mnist", "model.ema.decay=0.9", "data.download=false"],
    # spectral norm (power-iteration buffers) and hinge loss
    "sngan": ["exp=sngan", "data=fashion_mnist", "nets.d_norm=none", "data.download=false"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_interrupted_and_resumed_equals_uninterrupted(case: str, mnist_root) -> None:
    args = [*CASES[case], "steps=12", f"data.data_dir={mnist_root}", "log.every=3"]
    full = run(*args, "out=full")
    part = run(*args, "out=part", extra_callbacks=[SignalAt(5)])
    s = json.loads((part.run_dir / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["steps_done"] == 5
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.status == "completed" and resumed.summary["steps_done"] == 12
    assert resumed.summary["resumed_from"].endswith("last.ckpt")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    # the metrics log continues where it stopped: one row per logged step, no duplicates
    steps = [line.split(",")[0] for line in (resumed.run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps), key=int) and "12" in steps and "6" in steps


def test_resume_from_explicit_path_and_extend_steps(mnist_root) -> None:
    first = run("exp=gmm_ring", "steps=4", "out=a", "optim.schedule=constant")
    more = run("exp=gmm_ring", "steps=8", "optim.schedule=constant", f"resume={first.run_dir}/checkpoints/last.ckpt")
    assert more.run_dir == first.run_dir and more.summary["steps_done"] == 8
    straight = run("exp=gmm_ring", "steps=8", "out=b", "optim.schedule=constant")
    assert_bitwise_equal(weights(straight.run_dir), weights(more.run_dir))


def test_resuming_an_older_checkpoint_into_its_own_run_is_refused_and_branches_with_out(mnist_root) -> None:
    """resume=runs/a/checkpoints/step=2.ckpt of a run at step 4 would cut metrics.csv back to step 2 and write
    over the later last.ckpt: refused (exit 2, nothing written), naming out=DIR, which branches into a new run."""
    first = run("exp=gmm_ring", "steps=4", "out=a", "log.keep_every=2")
    ckpts = first.run_dir / "checkpoints"
    before = {p.name: p.read_bytes() for p in [*ckpts.iterdir(), first.run_dir / "metrics.csv"]}
    older = ckpts / "step=2.ckpt"
    with pytest.raises(ConfigError, match=r"out=DIR") as refused:
        run("exp=gmm_ring", "steps=6", f"resume={older}")
    assert "step 2" in str(refused.value) and "step 4" in str(refused.value)
    with pytest.raises(ConfigError, match=r"out=DIR"):
        run("exp=gmm_ring", "steps=6", f"resume={older}", "out=a")
    assert before == {p.name: p.read_bytes() for p in [*ckpts.iterdir(), first.run_dir / "metrics.csv"]}
    branch = run("exp=gmm_ring", "steps=6", f"resume={older}", "out=b")
    assert branch.run_dir == Path("b") and branch.summary["steps_done"] == 6
    assert before == {p.name: p.read_bytes() for p in [*ckpts.iterdir(), first.run_dir / "metrics.csv"]}


def test_resuming_into_another_existing_run_is_refused(mnist_root) -> None:
    """resume=a/...ckpt out=b, with b another finished run, wrote a's continuation over b's summary while b's
    checkpoints stayed (review): refused, exit 2, b untouched; an empty folder and a's own run still work."""
    first = run("exp=gmm_ring", "steps=4", "out=a", "optim.schedule=constant")
    other = run("exp=gmm_ring", "steps=4", "out=b", "seed=1", "optim.schedule=constant")
    files = [p for p in other.run_dir.rglob("*") if p.is_file()]
    before = {p: p.read_bytes() for p in files}
    ckpt = f"resume={first.run_dir}/checkpoints/last.ckpt"
    with pytest.raises(ConfigError, match=r"out=b holds another run.*new or empty"):
        run("exp=gmm_ring", "steps=6", "optim.schedule=constant", ckpt, "out=b")
    assert before == {p: p.read_bytes() for p in files}
    Path("c").mkdir()
    assert run("exp=gmm_ring", "steps=6", "optim.schedule=constant", ckpt, "out=c").summary["steps_done"] == 6
    assert run("exp=gmm_ring", "steps=6", "optim.schedule=constant", ckpt, "out=a").summary["steps_done"] == 6


class FirstBatchLr(L.Callback):
    """Records, at the first batch of a session, the G step, every optimizer's lr and every
    scheduler's base lrs (after Lightning restored them from the checkpoint)."""

    def __init__(self) -> None:
        self.seen: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.seen is None:
            self.seen = {
                "step": pl_module.g_step,
                "lr": [[float(g["lr"]) for g in o.param_groups] for o in trainer.optimizers],
                "base": [[float(b) for b in c.scheduler.base_lrs] for c in trainer.lr_scheduler_configs],
            }


def test_resume_with_a_changed_lr_is_refused_unless_overridden() -> None:
    run("exp=gmm_ring", "steps=6", "out=a")  # lr 1e-3, linear decay after int(0.7 * steps) steps
    with pytest.raises(ConfigError, match=r"optim\.lr_g: 0\.001 in the checkpoint, 0\.002 now") as refused:
        run("exp=gmm_ring", "steps=8", "out=a", "resume=auto", "optim.lr_g=0.002", "optim.lr_d=0.003")
    assert "optim.lr_d" in str(refused.value) and "resume_override=true" in str(refused.value)
    assert "lr_g: 0.001" in (Path("a") / "config.yaml").read_text()  # nothing was changed
    watch = FirstBatchLr()
    args = ["exp=gmm_ring", "steps=8", "out=a", "resume=auto", "optim.lr_g=0.002", "resume_override=true"]
    result = run(*args, extra_callbacks=[watch])
    assert result.status == "completed" and result.summary["steps_done"] == 8
    factor = lr_factor(6, 8, "linear_decay", 0.7)  # the new schedule at the resumed step
    assert factor < 1 and watch.seen["step"] == 6
    assert watch.seen["base"] == [[0.002], [0.001]]
    assert watch.seen["lr"] == [[pytest.approx(0.002 * factor)], [pytest.approx(0.001 * factor)]]
    assert "lr_g: 0.002" in (Path("a") / "config.yaml").read_text()
    record = json.loads((Path("a") / "changes.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 6 and record["overridden"] == ["optim.lr_g"]
    assert record["changes"]["optim.lr_g"] == [0.001, 0.002] and record["changes"]["steps"] == [6, 8]
    assert result.summary["changes"][-1] == record


def test_resume_refuses_another_model_and_fewer_steps_but_extends_steps() -> None:
    run("exp=gmm_ring", "steps=4", "out=a")
    with pytest.raises(ConfigError, match=r"model\.name: gan in the checkpoint, wgan_gp now"):
        run("exp=gmm_ring", "steps=8", "out=a", "resume=auto", "model=wgan_gp")
    with pytest.raises(ConfigError, match=r"steps=2 is below the checkpoint's G step 4"):
        run("exp=gmm_ring", "steps=2", "out=a", "resume=auto")
    assert "name: gan\n" in (Path("a") / "config.yaml").read_text()
    more = run("exp=gmm_ring", "steps=6", "out=a", "resume=auto", "log.every=2", "metrics.every=3")
    assert more.status == "completed" and more.summary["steps_done"] == 6
    assert "steps: 6" in (Path("a") / "config.yaml").read_text()


def test_extending_a_run_whose_lr_already_decayed_warns_and_records_it(capsys) -> None:
    """gmm_ring's lr decays linearly after 0.7 x steps. Its 4-step run used the factor 0.5 at step 4; extended to
    6 steps (the resume contract allows it) the schedule is rebuilt and lr jumps back up at step 5: the run is
    neither the 4- nor the 6-step run, and says so on stderr, in changes.jsonl and in summary.json."""
    run("exp=gmm_ring", "steps=4", "out=a")
    assert lr_factor(3, 4, "linear_decay", 0.7) != lr_factor(3, 6, "linear_decay", 0.7)  # step 4's factor
    capsys.readouterr()
    watch = FirstBatchLr()
    more = run("exp=gmm_ring", "steps=6", "out=a", "resume=auto", extra_callbacks=[watch])
    assert more.status == "completed" and more.summary["steps_done"] == 6
    assert watch.seen["lr"][0] == [pytest.approx(1e-3 * lr_factor(4, 6, "linear_decay", 0.7))]  # the 6-step lr
    warned = capsys.readouterr().err
    assert "warning: steps=6 changes the learning rate of G steps already done" in warned
    assert "G step 4 the factor 0.5 at steps=4" in warned and "out=DIR" in warned
    record = json.loads((Path("a") / "changes.jsonl").read_text().splitlines()[-1])
    assert record["changes"]["steps"] == [4, 6] and "G step 4" in record["lr_schedule"]
    assert more.summary["changes"][-1] == record
    # a run whose steps so far all came before both decays extends as the longer run: 2 steps at 2 (decay after
    # step 1) and at 6 (after step 4) used the factor 1.0 for both steps; no warning, no lr_schedule
    run("exp=gmm_ring", "steps=2", "out=b")
    capsys.readouterr()
    assert run("exp=gmm_ring", "steps=6", "out=b", "resume=auto").summary["steps_done"] == 6
    assert "warning" not in capsys.readouterr().err
    assert "lr_schedule" not in json.loads((Path("b") / "changes.jsonl").read_text().splitlines()[-1])
    # a schedule overridden altogether is recorded as that override, without a step-by-step comparison
    run("exp=gmm_ring", "steps=4", "out=c")
    args = ("steps=6", "out=c", "resume=auto", "optim.schedule=constant", "resume_override=true")
    assert run("exp=gmm_ring", *args).summary["steps_done"] == 6
    record = json.loads((Path("c") / "changes.jsonl").read_text().splitlines()[-1])
    assert record["overridden"] == ["optim.schedule"] and "lr_schedule" not in record


def test_a_best_ckpt_from_steps_after_the_resumed_checkpoint_is_set_aside(capsys) -> None:
    """A run killed (no handler: SIGKILL, an OOM kill) after saving best.ckpt at step 7 but last.ckpt at 4
    resumes from 4. best.ckpt then held weights of an abandoned trajectory under the resumed run's name;
    it is renamed (kept, not deleted) and the resumed run writes its own."""
    args = ("exp=gmm_ring", "steps=8", "out=a", "log.keep_every=4", "metrics.every=0")
    run(*args)
    ckpts = Path("a") / "checkpoints"
    (ckpts / "last.ckpt").write_bytes((ckpts / "step=4.ckpt").read_bytes())  # the kill: last.ckpt at 4
    torch.save({"gan_lightning": {"g_step": 7}}, ckpts / "best.ckpt")
    capsys.readouterr()
    assert run(*args, "resume=auto").summary["steps_done"] == 8
    aside = ckpts / "best.ckpt.abandoned_step_7"
    assert torch.load(aside, weights_only=True)["gan_lightning"]["g_step"] == 7
    assert "best.ckpt.abandoned_step_7" in capsys.readouterr().err
    # the resumed run's own: its one evaluation (the last step's) improves on none
    assert torch.load(ckpts / "best.ckpt", weights_only=True)["gan_lightning"]["g_step"] == 8


def test_resuming_a_finished_run_keeps_its_summary_whole() -> None:
    """resume=auto on a run already at its steps reports what the checkpoint holds: summary.json was rewritten
    without the weights' digest and without the run's changes.jsonl history."""
    ring = ("exp=gmm_ring", "optim.schedule=constant")
    run(*ring, "steps=2", "out=a")
    done = run(*ring, "steps=4", "out=a", "resume=auto").summary  # an extension: one changes.jsonl record
    assert done["weights_sha1"] and len(done["changes"]) == 1
    again = run(*ring, "steps=4", "out=a", "resume=auto").summary
    assert again["status"] == "completed" and again["steps_done"] == 4
    assert again["weights_sha1"] == done["weights_sha1"] and again["changes"] == done["changes"]
    # a branch reported at its checkpoint's step (steps = that step, as the refusal of fewer steps suggests) is a
    # run directory like any other: config.yaml, and the steps change recorded, with the decay it changed
    run("exp=gmm_ring", "steps=20", "out=long", "log.keep_every=10")
    short = run("exp=gmm_ring", "steps=10", "out=b", f"resume={Path('long/checkpoints/step=10.ckpt')}").summary
    assert short["status"] == "completed" and short["steps_done"] == 10
    assert "steps: 10" in (Path("b") / "config.yaml").read_text()
    (record,) = short["changes"]
    assert record["changes"]["steps"] == [20, 10] and "G step 9" in record["lr_schedule"]  # decay from 7 vs 14


@pytest.mark.parametrize(
    ("done", "old", "new", "schedule", "start", "first"),
    [
        (60_000, 60_000, 80_000, "constant", 0.5, None),
        (30_001, 60_000, 80_000, "linear_decay", 0.5, None),  # steps 1..30,001 used f(0..30,000) = 1 in both
        (30_002, 60_000, 80_000, "linear_decay", 0.5, 30_001),
        (60_000, 60_000, 80_000, "linear_decay", 0.5, 30_001),
        (50_000, 80_000, 60_000, "linear_decay", 0.5, 30_001),  # a shorter target: its decay starts earlier
        (10, 10, 20, "linear_decay", 0.0, 1),  # decay from the start: f(0) = 1 in both, f(1) differs
    ],
)
def test_the_first_step_whose_lr_an_extension_changes(done, old, new, schedule, start, first) -> None:
    assert first_changed_lr_step(done, old, new, schedule, start) == first
    if first is not None:  # against the definition: the step before agrees, this one does not
        assert lr_factor(first - 1, old, schedule, start) == lr_factor(first - 1, new, schedule, start)
        assert lr_factor(first, old, schedule, start) != lr_factor(first, new, schedule, start)


class StopAt(L.Callback):
    """Stops the fit at the end of G step k the way Lightning's own stops do (trainer.max_time's
    Timer, EarlyStopping): through ``trainer.should_stop``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.g_step == self.step:
            trainer.should_stop = True


def test_a_run_stopped_by_lightning_saves_its_last_step_and_resumes_exactly() -> None:
    args = ["exp=gmm_ring", "steps=12", "log.ckpt_every=1000"]
    full = run(*args, "out=full")
    part = run(*args, "out=part", extra_callbacks=[StopAt(5)])
    assert part.status == "interrupted" and part.summary["steps_done"] == 5
    assert part.summary["checkpoints"] == ["last.ckpt"]  # the stopped step, not only the last interval's
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.status == "completed" and resumed.summary["steps_done"] == 12
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


def test_a_signal_at_an_improving_evaluation_still_saves_best_ckpt() -> None:
    """A scheduler's SIGTERM often lands during an evaluation: the step's improvement of the primary metric
    was recorded in summary.json as the best step, so best.ckpt must hold that step too (it was skipped)."""
    args = ["exp=gmm_ring", "steps=12", "metrics.every=2", "metrics.n=200"]
    part = run(*args, "out=part", extra_callbacks=[SignalAt(2)])  # the first evaluation always improves
    assert part.status == "interrupted" and part.summary["steps_done"] == 2
    primary = part.summary["primary"]
    assert part.summary["best"][primary]["step"] == 2
    best = torch.load(part.run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["gan_lightning"]["g_step"] == 2


def test_a_primary_metric_changed_on_resume_takes_effect() -> None:
    """metrics.* may change on resume (DESIGN.md): a new metrics.primary then picks best.ckpt; the checkpoint's
    primary used to win for good."""
    args = ["exp=gmm_ring", "metrics.every=2", "metrics.n=200"]
    first = run(*args, "steps=4", "out=a")
    assert first.summary["primary"] != "modes/high_quality"
    more = run(*args, "steps=8", "out=a", "resume=auto", "metrics.primary=modes/high_quality")
    assert more.summary["primary"] == "modes/high_quality"
    # what picks best.ckpt, on the run state a resume restores: the new primary's improvements
    from gan_lightning.callbacks.run import RunState

    state = RunState(Path("a"), "gmm_ring", 0, 8)
    state.record(5, {"fid": 3.0, "kid": 0.2}, {"fid": False, "kid": False}, "fid")
    restored = RunState(Path("a"), "gmm_ring", 0, 8)
    restored.load_state_dict(state.state_dict())
    restored.record(6, {"fid": 4.0, "kid": 0.1}, {"fid": False, "kid": False}, "kid")
    assert restored.primary == "kid" and restored.improved_at == 6


def test_trainer_max_time_ends_with_a_checkpoint_of_the_last_step() -> None:
    stopped = run("exp=gmm_ring", "steps=1000000", "log.ckpt_every=0", "trainer.max_time=00:00:00:01", "out=t")
    assert stopped.status == "interrupted" and 0 < stopped.summary["steps_done"] < 1000000
    state = torch.load(Path("t") / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["gan_lightning"]["g_step"] == stopped.summary["steps_done"]


def test_a_run_stopped_before_its_first_step_leaves_the_checkpoint_alone() -> None:
    """Resuming a run whose trainer.max_time is used up stops before any step: nothing trained, so
    nothing is saved over last.ckpt (nor is a step-0 checkpoint written for a fresh run)."""

    class StopAtOnce(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    fresh = run("exp=gmm_ring", "steps=6", "out=a", extra_callbacks=[StopAtOnce()])
    assert fresh.summary["steps_done"] == 0 and not (Path("a") / "checkpoints" / "last.ckpt").exists()
    first = run("exp=gmm_ring", "steps=6", "out=b", extra_callbacks=[SignalAt(3)])
    before = (first.run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = run("exp=gmm_ring", "steps=6", "out=b", "resume=auto", extra_callbacks=[StopAtOnce()])
    assert again.summary["steps_done"] == 3
    assert (first.run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


def test_resume_of_a_finished_run_does_nothing() -> None:
    first = run("exp=gmm_ring", "steps=3", "out=a")
    before = weights(first.run_dir)
    again = run("exp=gmm_ring", "steps=3", "out=a", "resume=auto")
    assert again.status == "completed" and again.summary["steps_done"] == 3
    assert_bitwise_equal(before, weights(again.run_dir))


def test_same_seed_twice_is_bitwise_equal_and_seeds_differ() -> None:
    a = run("exp=gmm_ring", "steps=5", "out=a", "seed=1")
    b = run("exp=gmm_ring", "steps=5", "out=b", "seed=1")
    c = run("exp=gmm_ring", "steps=5", "out=c", "seed=2")
    assert_bitwise_equal(weights(a.run_dir), weights(b.run_dir))
    wa, wc = weights(a.run_dir), weights(c.run_dir)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_sigterm_in_a_subprocess_leaves_a_resumable_run(tmp_path) -> None:
    """A real `gan-lightning train` process gets SIGTERM mid-run: it finishes the step, writes
    last.ckpt and summary.json (interrupted); resume=auto then completes the run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "gan_lightning",
        "train",
        "exp=gmm_ring",
        "steps=100000",
        "out=sig",
        *TINY,
        "log.every=10",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "sig" / "metrics.csv"
    import time

    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    s = json.loads((tmp_path / "sig" / "summary.json").read_text())
    assert s["status"] == "interrupted" and 0 < s["steps_done"] < 100000
    assert (tmp_path / "sig" / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "sig" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_lightning"]["g_step"] == s["steps_done"]
    cmd2 = [
        sys.executable,
        "-m",
        "gan_lightning",
        "train",
        "exp=gmm_ring",
        f"steps={s['steps_done'] + 3}",
        "out=sig",
        "resume=auto",
        *TINY,
    ]
    done = subprocess.run(cmd2, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "sig" / "summary.json").read_text())["status"] == "completed"


class PoisonAt(L.Callback):
    """Sets one G weight to NaN after step k: every later loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.g_step == self.step:
            with torch.no_grad():
                next(pl_module.G.parameters()).view(-1)[0] = float("nan")


def test_nan_stops_the_run_as_diverged_and_keeps_the_last_good_checkpoint() -> None:
    result = run("exp=gmm_ring", "steps=50", "log.ckpt_every=4", "out=nan", extra_callbacks=[PoisonAt(6)])
    s = result.summary
    assert s["status"] == "diverged" and s["diverged_at"] == 7 and s["steps_done"] == 7
    ckpt = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_lightning"]["g_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_cli_exit_codes_and_run_directory_line(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "train", "exp=gmm_ring", "steps=3", "out=cli", *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "run directory: cli" in out.stdout and "completed: 3/3" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "train", "exp=gmm_ring", "model.n_critc=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "model.n_critic" in bad.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written for a bad config


def test_cli_reports_a_non_finite_final_metric(tmp_path) -> None:
    """summary.json writes an infinite mode KL (no sample near a mode after 2 steps) as null."""
    cmd = [sys.executable, "-m", "gan_lightning", "train", "exp=gmm_ring", "steps=2", "out=kl", *TINY]
    out = subprocess.run(
        [*cmd, "metrics.names=[modes]"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "kl" / "summary.json").read_text())["final"]["modes/kl"] is None
    assert "completed: 2/2 G steps" in out.stdout and "modes/kl=non-finite" in out.stdout


def test_repo_is_importable_from_anywhere() -> None:
    assert (REPO / "experiments" / "base.yaml").is_file()


def test_resume_auto_finds_an_unfinished_run_with_a_suffixed_name(tmp_path, monkeypatch) -> None:
    """Two runs started in the same second are <time>-s0 and <time>-s0.1 (review): resume=auto looked only for
    names ending in -s<seed>, so it started a third run instead of continuing the unfinished .1."""
    from gan_lightning.config import load_config
    from gan_lightning.rundir import resolve_run

    monkeypatch.chdir(tmp_path)
    done, unfinished = Path("runs/gmm_ring/20261128-010101-s0"), Path("runs/gmm_ring/20261128-010101-s0.1")
    for run_dir, status in ((done, "completed"), (unfinished, "interrupted")):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
        (run_dir / "summary.json").write_text(json.dumps({"status": status}))
    Path("runs/gmm_ring/20261128-010101-s10").mkdir()  # seed 10's: never seed 1's
    assert resolve_run(load_config(["exp=gmm_ring", "resume=auto"])) == (
        unfinished,
        unfinished / "checkpoints/last.ckpt",
    )
    fresh, resume = resolve_run(load_config(["exp=gmm_ring", "resume=auto", "seed=1"]))
    assert resume is None and fresh.name.endswith("-s1")
