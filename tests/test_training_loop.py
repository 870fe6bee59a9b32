"""The manual-optimization loop: n_critic, order of steps, step counting, EMA, every experiment runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch

from gan_lightning.config import known_experiments, load_config
from gan_lightning.registry import ConfigError
from gan_lightning.rundir import RUN_DIR_ENV
from gan_lightning.train import train
from tests.conftest import TINY, data_overrides
from tests.helpers import run


class StepRecorder(L.Callback):
    """Wraps both optimizers' step() to record the order of D and G updates."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.global_steps: list[int] = []

    def on_train_start(self, trainer, pl_module) -> None:
        opt_g, opt_d = pl_module.optimizers()
        for opt, tag in ((opt_g.optimizer, "G"), (opt_d.optimizer, "D")):
            original = opt.step

            def step(*a, _orig=original, _tag=tag, **k):
                self.events.append(_tag)
                return _orig(*a, **k)

            opt.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.global_steps.append(trainer.global_step)


@pytest.mark.parametrize("n_critic", [1, 3, 5])
def test_exactly_n_critic_d_steps_before_each_g_step(n_critic: int) -> None:
    rec = StepRecorder()
    result = run("exp=gmm_ring", "steps=4", f"model.n_critic={n_critic}", "out=r", extra_callbacks=[rec])
    assert rec.events == (["D"] * n_critic + ["G"]) * 4
    assert result.summary["steps_done"] == 4
    # Lightning's global_step counts every optimizer step: (n_critic + 1) per G step
    assert rec.global_steps == [(n_critic + 1) * k for k in range(1, 5)]


def test_each_critic_step_gets_its_own_real_batch() -> None:
    seen = []

    class Batches(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.append(batch.x.clone())

    run("exp=gmm_ring", "steps=2", "model.n_critic=3", "data.batch_size=5", "out=r", extra_callbacks=[Batches()])
    assert seen[0].shape == (3, 5, 2)
    flat = torch.cat([s.flatten(0, 1) for s in seen])
    assert len(torch.unique(flat, dim=0)) == len(flat)  # no batch reused


def test_weight_clipping_holds_after_every_step() -> None:
    bounds = []

    class Bound(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            bounds.append(max(p.abs().max().item() for p in pl_module.D.parameters()))

    run("exp=gmm_ring", "model=wgan", "steps=3", "out=r", extra_callbacks=[Bound()])
    assert bounds and max(bounds) <= 0.01


def test_ema_generator_is_the_running_average() -> None:
    snapshots = {}

    class Snap(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            g = {k: v.detach().clone() for k, v in pl_module.G.state_dict().items()}
            e = {k: v.detach().clone() for k, v in pl_module.G_ema.state_dict().items()}
            snapshots[pl_module.g_step] = (g, e)

    run("exp=gmm_ring", "steps=5", "model.ema.decay=0.9", "model.ema.start=2", "out=r", extra_callbacks=[Snap()])
    g1, e1 = snapshots[1]
    for k in g1:  # before `start` the EMA is a copy
        assert torch.equal(g1[k], e1[k])
    for step in (3, 4, 5):
        g, e = snapshots[step]
        _, e_prev = snapshots[step - 1]
        for k in g:
            if g[k].is_floating_point():
                torch.testing.assert_close(e[k], 0.9 * e_prev[k] + 0.1 * g[k], rtol=1e-5, atol=1e-6)


def test_run_directory_contract() -> None:
    result = run("exp=gmm_ring", "steps=6", "log.sample_every=3", "metrics.every=3", "out=r")
    d = result.run_dir
    for name in ("config.yaml", "summary.json", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (d / name).is_file(), name
    assert sorted(p.name for p in (d / "samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    s = json.loads((d / "summary.json").read_text())
    for key in (
        "exp",
        "seed",
        "steps_done",
        "status",
        "final",
        "best",
        "wall_s",
        "g_iters_per_s",
        "versions",
        "git_commit",
        "device",
    ):
        assert key in s, key
    assert s["status"] == "completed" and s["steps_done"] == 6 and s["final"]["step"] == 6
    assert set(s["versions"]) >= {"python", "torch", "lightning", "gan_lightning"}
    assert s["best"]["modes/covered"]["step"] in (3, 6)
    header = (d / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss/d", "loss/g", "modes/covered"} <= set(header)


def test_default_run_directory_is_under_runs_exp() -> None:
    result = run("exp=gmm_ring", "steps=2", "seed=3")
    assert result.run_dir.parent.as_posix() == "runs/gmm_ring" and result.run_dir.name.endswith("-s3")


def test_existing_run_is_not_overwritten() -> None:
    from gan_lightning.registry import ConfigError

    run("exp=gmm_ring", "steps=2", "out=r")
    with pytest.raises(ConfigError, match="resume=auto"):
        run("exp=gmm_ring", "steps=2", "out=r")


def test_train_runs_the_callers_callbacks_first() -> None:
    class Watch(L.Callback):
        def __init__(self) -> None:
            self.position, self.g_steps = -1, []

        def on_train_start(self, trainer, pl_module) -> None:
            self.position = trainer.callbacks.index(self)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.g_steps.append(pl_module.g_step)

    watch = Watch()
    result = train(load_config([*TINY, "exp=gmm_ring", "steps=3", "out=r"]), callbacks=[watch])
    assert result.status == "completed" and watch.position == 0 and watch.g_steps == [1, 2, 3]


def test_a_failed_train_leaves_no_process_state() -> None:
    """A run that fails after choosing its directory must not send the next run (or the next
    run's subprocesses) into that directory."""

    def env() -> dict[str, str]:  # less the seed that Lightning's seed_everything publishes by design
        return {k: v for k, v in os.environ.items() if k not in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}

    before = env()
    with pytest.raises(ConfigError, match="fid"):  # fails while building the evaluator
        run("exp=gmm_ring", "steps=2", "out=failed", "metrics.names=[fid]")
    assert env() == before
    after = run("exp=gmm_ring", "steps=2", "out=next")
    assert after.run_dir == Path("next") and after.status == "completed"
    assert (Path("next") / "checkpoints" / "last.ckpt").is_file() and not (Path("failed") / "checkpoints").exists()
    assert env() == before


def test_a_ddp_workers_run_directory_variable_is_restored(monkeypatch) -> None:
    """In a DDP worker the variable comes from rank 0: train() uses it and leaves it as it was."""
    monkeypatch.setenv(RUN_DIR_ENV, "from_rank_0")
    result = run("exp=gmm_ring", "steps=2", "out=ignored")
    assert result.run_dir == Path("from_rank_0") and not Path("ignored").exists()
    assert os.environ[RUN_DIR_ENV] == "from_rank_0"


def test_every_experiment_not_named_for_absent_data_uses_data_on_the_machine() -> None:
    """The classic family and the conditional ones default to Fashion-MNIST (on the machine);
    only experiments named for MNIST, CelebA or a folder need data a user brings."""
    for exp in known_experiments():
        if exp.endswith(("_mnist", "_celeba", "_folder")):
            continue
        data = load_config([f"exp={exp}"]).data.name
        on_machine = ("toy", "fashion_mnist", "fashion_edges", "stacked_fashion", "fashion_synthetic")
        on_machine += ("fashion_domains", "fashion_superres")
        assert data in on_machine, f"{exp} trains on {data}"
    assert {"cgan_fashion", "infogan_fashion"} <= set(known_experiments())
    assert load_config(["exp=wgan_gp", "data=mnist"]).data.name == "mnist"  # MNIST one override away


@pytest.mark.parametrize("exp", known_experiments())
def test_every_experiment_runs_a_few_steps(exp: str, mnist_root, tmp_path) -> None:
    """Each experiment trains 2 steps: on the machine's Fashion-MNIST and toy data where the
    experiment uses them, else on a synthetic tree of the data it is named for."""
    result = run(f"exp={exp}", "steps=2", *data_overrides(exp, mnist_root, tmp_path), "out=r")
    assert result.status == "completed" and result.summary["steps_done"] == 2
    losses = json.loads((result.run_dir / "summary.json").read_text())
    assert losses["status"] == "completed"
