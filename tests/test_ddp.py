"""DDP simulated on CPU: 2 processes with gloo against 1 process with the doubled batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import TINY, tiny_for

pytestmark = pytest.mark.xdist_group("ddp")  # keep the two-process runs off the other worker


def train_cli(tmp_path, *args: str, timeout: int = 600) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "train", *tiny_for(list(args)), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = tmp_path / next(a for a in args if a.startswith("out="))[4:]
    return json.loads((run_dir / "summary.json").read_text())


def csv_rows(run_dir) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if any(row[k] not in ("", None) for k in row if k.startswith("loss/"))]


def weights(tmp_path, out: str) -> dict[str, torch.Tensor]:
    return torch.load(tmp_path / out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


CONV_NO_BN = ["nets.g_norm=none", "nets.d_norm=none", "metrics.names=[]", "data.download=false", "log.neighbours=false"]


@pytest.mark.parametrize(
    "model",
    [
        # gradient penalty (double backward under DDP), n_critic 5, MLP nets
        ["exp=gmm_ring", "model=wgan_gp", "nets.d_norm=none"],
        # non-saturating loss with R1, an EMA of G, and metrics gathered across ranks (301: uneven shards)
        ["exp=gmm_ring", "model.ema.decay=0.9", "metrics.names=[modes]", "metrics.n=301"],
        # conv nets without BatchNorm, spectral norm (power-iteration buffers), hinge loss
        ["exp=sngan", "data=fashion_mnist", *CONV_NO_BN],
        # class-conditional: labels of generated samples drawn per rank, projection critic
        ["exp=cgan_mnist", *CONV_NO_BN],
    ],
    ids=["wgan_gp", "gan_r1_ema_metrics", "sngan_conv", "cgan_projection"],
)
def test_two_processes_equal_one_with_the_doubled_batch(tmp_path, mnist_root, model: list[str]) -> None:
    common = [*model, "steps=6", "trainer.accelerator=cpu", "log.every=2", f"data.data_dir={mnist_root}"]
    two = train_cli(tmp_path, *common, "data.batch_size=16", "trainer.devices=2", "trainer.strategy=ddp", "out=ddp")
    one = train_cli(tmp_path, *common, "data.batch_size=32", "out=single")
    assert two["status"] == one["status"] == "completed" and two["steps_done"] == 6
    assert two["device"].startswith("2 x CPU")
    a, b = weights(tmp_path, "ddp"), weights(tmp_path, "single")
    # atol 1e-4: batch 16 twice and batch 32 once sum in other orders; Adam turns that float noise
    # into weight differences up to 2.6e-5 after 6 steps (sngan_conv, measured on an AVX-512 CPU),
    # while a rank training on wrong data moves weights by ~lr = 2e-4 per step
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=f"{k} differs")
    # every rank ends with the same weights, bit for bit
    digests = two["rank_weights_sha1"]
    assert len(digests) == 2 and digests[0] == digests[1] == two["weights_sha1"]
    # the logged losses and stats are the global batch's (the mean over the ranks), not rank 0's share
    logged_two, logged_one = csv_rows(tmp_path / "ddp"), csv_rows(tmp_path / "single")
    assert [r["step"] for r in logged_two] == [r["step"] for r in logged_one] and len(logged_one) >= 3
    for r2, r1 in zip(logged_two, logged_one):
        for key in r1:
            if key.startswith(("loss/", "d/", "g/")) and r1[key] != "":
                assert float(r2[key]) == pytest.approx(float(r1[key]), rel=1e-3, abs=1e-4), (key, r2["step"])
    if "modes/covered" in one["final"]:  # metrics: N ranks evaluate exactly the samples of one process
        for key in ("modes/covered", "modes/high_quality"):
            assert two["final"][key] == pytest.approx(one["final"][key], abs=2 / 301)


@pytest.mark.parametrize(
    "exp",
    [
        "acgan_fashion",  # auxiliary classifier losses on real and generated labels
        "infogan_mnist",  # latent codes and the Q head's mutual-information term
        "pix2pix_edges",  # U-Net with dropout noise, PatchGAN on pairs, L1
        "cyclegan_edges",  # two G, two D, a history buffer per D (its draws differ per rank)
    ],
)
def test_every_other_model_trains_under_ddp_with_identical_ranks(tmp_path, mnist_root, exp: str) -> None:
    """Models whose randomness (dropout, history buffers, BatchNorm statistics) makes a 1-process
    run with the doubled batch differ: under DDP the ranks must still end with the same weights."""
    args = [f"exp={exp}", "steps=4", "trainer.accelerator=cpu", f"data.data_dir={mnist_root}", "data.batch_size=4"]
    args += ["trainer.devices=2", "trainer.strategy=ddp", "out=ddp", "metrics.names=[]", "log.keep_every=2"]
    two = train_cli(tmp_path, *args)
    assert two["status"] == "completed" and two["steps_done"] == 4
    digests = two["rank_weights_sha1"]
    assert len(digests) == 2 and digests[0] == digests[1] == two["weights_sha1"]
    # the weights moved between steps 2 and 4 (ranks that skipped their optimizer steps would also agree)
    ckpts = tmp_path / "ddp" / "checkpoints"
    mid = torch.load(ckpts / "step=2.ckpt", weights_only=True)["state_dict"]
    end = weights(tmp_path, "ddp")
    moved = {k.split(".")[0] for k in end if end[k].is_floating_point() and not torch.equal(end[k], mid[k])}
    nets = {"G", "D"} if exp != "cyclegan_edges" else {"G_AB", "G_BA", "D_A", "D_B"}
    assert nets <= moved, f"nets whose weights did not change between steps 2 and 4: {nets - moved}"


@pytest.mark.parametrize("exp", ["cyclegan_edges", "simgan_fashion"])
def test_a_ddp_run_resumed_mid_way_equals_the_uninterrupted_one(tmp_path, mnist_root, exp: str) -> None:
    """State no weight holds and each rank owns (CycleGAN's history of generated images per D, SimGAN's
    history of refined images: each rank fills its own) is saved for every rank: two processes resumed
    at step 2 end bit for bit where the run that went on ended."""
    import shutil

    from tests.helpers import assert_bitwise_equal

    args = [f"exp={exp}", "steps=4", "trainer.accelerator=cpu", f"data.data_dir={mnist_root}", "data.batch_size=4"]
    args += ["trainer.devices=2", "trainer.strategy=ddp", "metrics.names=[]", "log.keep_every=2"]
    args += ["model.pool_size=4"] if exp == "cyclegan_edges" else ["model.history_size=4", "model.refiner_pretrain=1"]
    args += [] if exp == "cyclegan_edges" else ["model.d_pretrain=0", "model.r_updates=1"]  # a D step from step 2
    train_cli(tmp_path, *args, "out=whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "checkpoints"
    (ckpts / "step=2.ckpt").replace(ckpts / "last.ckpt")
    resumed = train_cli(tmp_path, *args, "out=resumed", "resume=auto")
    assert resumed["status"] == "completed" and resumed["steps_done"] == 4
    assert_bitwise_equal(weights(tmp_path, "resumed"), weights(tmp_path, "whole"))


NAN_ON_RANK_1 = """
import sys
import torch
from gan_lightning.config import load_config
from gan_lightning.models.base import GANModule
from gan_lightning.train import train

check = GANModule.check_finite


def nan_on_rank_1_from_step_3(self, losses):
    if self.global_rank == 1 and self.g_step >= 3:
        losses = {k: v * float("nan") for k, v in losses.items()}
    check(self, losses)


GANModule.check_finite = nan_on_rank_1_from_step_3
train(load_config(sys.argv[1:]))
"""


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path) -> None:
    """Only rank 1 sees a NaN: the stop decision is reduced across ranks, so rank 0 stops too
    (instead of waiting forever in the next all-reduce) and the run is recorded as diverged."""
    script = tmp_path / "nan_rank1.py"
    script.write_text(NAN_ON_RANK_1)
    args = [*TINY, "exp=gmm_ring", "steps=20", "trainer.accelerator=cpu", "trainer.devices=2"]
    args += ["trainer.strategy=ddp", "out=nan", "metrics.names=[]"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps_done"] == 3


# every measure of the evaluation table a generator can take, on a class-conditional one (for cas)
TABLE = "mis,mode_score,am,mmd,nn1,c2st,wcritic,birthday,ndb,spectrum,parzen,recon,cas,prdc,classes"


def test_every_measure_under_ddp_equals_one_process_on_the_same_samples(tmp_path, mnist_root) -> None:
    """The metrics callback under DDP (each rank extracts its shard, the shards are gathered, every
    rank reduces them) gives what one process computes from the same generator and samples."""
    from gan_lightning.callbacks.metrics import compute_metrics
    from gan_lightning.checkpoint import load_model
    from gan_lightning.data import build_datamodule
    from gan_lightning.train import build_evaluator

    names = TABLE
    args = ["exp=cgan_mnist", *CONV_NO_BN[:2]]
    args += ["data.download=false", "log.neighbours=false", f"data.data_dir={mnist_root}", "steps=2"]
    args += ["trainer.accelerator=cpu", f"metrics.names=[{names}]", "metrics.n=101", "metrics.n_ref=200"]
    args += ["metrics.ndb_bins=5", "metrics.recon_n=6", "metrics.recon_steps=5", "metrics.raw_too=false"]
    two = train_cli(tmp_path, *args, "data.batch_size=8", "trainer.devices=2", "trainer.strategy=ddp", "out=ddp")
    assert two["device"].startswith("2 x CPU")
    model = load_model(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    dm = build_datamodule(model.cfg)
    dm.prepare()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks ran
    try:
        one = compute_metrics(build_evaluator(model.cfg, dm, verbose=False).prepare(), model, 101, None, False)
    finally:
        torch.set_num_threads(threads)
    assert len(one) >= len(names.split(","))
    for key, value in one.items():
        logged = two["final"][key]
        if value != value or abs(value) == float("inf"):  # written to JSON as null
            assert logged is None, key
        else:
            assert logged == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_translation_metrics_and_the_best_checkpoint_under_ddp(tmp_path, mnist_root) -> None:
    """Rank 0 alone evaluated the image-to-image metrics, so rank 0 alone saw an improvement and
    saved best.ckpt, whose collectives then waited for ranks that never came (a hang)."""
    args = ["exp=pix2pix_edges", "steps=2", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    args += [f"data.data_dir={mnist_root}", "data.download=false", "metrics.every=0", "metrics.n=64", "out=ddp"]
    summary = train_cli(tmp_path, *args, timeout=300)
    assert summary["status"] == "completed" and summary["steps_done"] == 2
    assert "ab/l1" in summary["final"] and summary["best"]
    assert (tmp_path / "ddp" / "checkpoints" / "best.ckpt").is_file()


def test_several_devices_counts_what_lightning_would_use(monkeypatch) -> None:
    """trainer.devices=auto (or -1) takes every visible GPU: with two, the run is a DDP run and needs
    the GAN loop's DDP settings, and one-device options (perf.fast, unrolling) must refuse it."""
    from lightning.pytorch.strategies import DDPStrategy

    from gan_lightning.config import load_config
    from gan_lightning.distributed import several_devices
    from gan_lightning.registry import ConfigError
    from gan_lightning.train import trainer_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not several_devices({"devices": "auto"})  # no GPU: "auto" is one CPU process
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    several = [{"devices": "auto"}, {"devices": -1}, {"devices": "-1"}, {"devices": [0, 1]}, {"devices": "0,1"}]
    several += [{"devices": 2}, {"devices": "2"}, {"devices": 1, "num_nodes": 2}]
    one = [{"devices": 1}, {"devices": "1"}, {"devices": [1]}, {"devices": "auto", "accelerator": "cpu"}, {}]
    assert all(several_devices(t) for t in several) and not any(several_devices(t) for t in one)
    kw = trainer_kwargs(load_config(["exp=gmm_ring", "trainer.devices=auto"]))
    assert isinstance(kw["strategy"], DDPStrategy)
    with pytest.raises(ConfigError, match="one device"):
        load_config(["exp=gmm_ring", "perf.fast=true", "trainer.devices=auto"])
    with pytest.raises(ConfigError, match="one"):
        load_config(["exp=gmm_grid_pacgan_protocol", "model.unroll=1", "trainer.devices=auto"])
    load_config(["exp=gmm_ring", "perf.fast=true", "trainer.devices=[1]"])  # one GPU, the second: allowed
    for bad in ("cuda:0", "", None, 1.5):
        with pytest.raises(ConfigError, match=r"trainer\.devices"):
            several_devices({"devices": bad})


def test_metrics_are_prepared_on_the_gpu_of_this_rank(monkeypatch) -> None:
    """Extractors and reference features are built before the fit, on the GPU Lightning will give
    this process: devices=[1] is the second GPU, rank 1 of devices=2 the second too."""
    from gan_lightning.config import load_config
    from gan_lightning.train import metrics_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert metrics_device(load_config(["exp=gmm_ring"])) == "cuda:0"
    assert metrics_device(load_config(["exp=gmm_ring", "trainer.devices=[1]"])) == "cuda:1"
    assert metrics_device(load_config(["exp=gmm_ring", "trainer.accelerator=cpu"])) == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert metrics_device(load_config(["exp=gmm_ring", "trainer.devices=2"])) == "cuda:1"
    assert metrics_device(load_config(["exp=gmm_ring", "trainer.devices=2,3"])) == "cuda:3"


FULL_DISK_ON_RANK_0 = """
import errno
import os
import sys
import lightning.pytorch as L
from gan_lightning.cli import main

real = L.Trainer.save_checkpoint
calls = []


def full_disk_on_rank_0_from_the_second_save(self, filepath, *args, **kwargs):
    calls.append(filepath)
    if self.is_global_zero and len(calls) >= 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
    return real(self, filepath, *args, **kwargs)


L.Trainer.save_checkpoint = full_disk_on_rank_0_from_the_second_save
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_a_checkpoint_write_failing_on_rank_0_alone_stops_every_rank(tmp_path) -> None:
    """Only rank 0 writes checkpoints: when its write fails (disk full), the other rank, already waiting
    for it, must stop too, instead of waiting forever; the run exits 74 with last.ckpt of step 2 intact."""
    from gan_lightning.cli import EXIT_WRITE

    script = tmp_path / "full_disk_rank0.py"
    script.write_text(FULL_DISK_ON_RANK_0)
    args = [*TINY, "exp=gmm_ring", "steps=6", "log.ckpt_every=2", "trainer.accelerator=cpu", "trainer.devices=2"]
    args += ["trainer.strategy=ddp", "out=full", "metrics.names=[]"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the run hung after rank 0's checkpoint write failed")
    assert proc.returncode == EXIT_WRITE, err[-3000:]
    assert "No space left on device" in err
    ckpt = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_lightning"]["g_step"] == 2
    try:  # and no rank is left behind
        os.killpg(proc.pid, 0)
        time.sleep(5)
        os.killpg(proc.pid, 0)
        os.killpg(proc.pid, 9)
        pytest.fail("a process of the run outlived it")
    except ProcessLookupError:
        pass
    assert not list((tmp_path / "full" / "checkpoints").glob(".*.tmp"))


def test_torchrun_two_processes_without_out_share_one_run_and_exit_0(tmp_path) -> None:
    """Under torchrun (or srun) the ranks other than 0 exited 1 (their result had no status), so a finished run
    was reported failed and rank 0 was killed while it wrote its summary; without out= each rank made its own run
    directory. Both ranks now exit 0 and share one directory named by the launcher's run id."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("GAN_LIGHTNING_RUN_DIR", None)
    args = [*TINY, "exp=gmm_ring", "steps=4", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "gan_lightning"]
    out = subprocess.run([*cmd, "train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = [p for p in (tmp_path / "runs" / "gmm_ring").iterdir()]
    assert len(runs) == 1, runs
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 4
    assert len(summary["rank_weights_sha1"]) == 2


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "1"}, False),  # Lightning's launcher, second process
        ({"RANK": "2", "LOCAL_RANK": "0", "GROUP_RANK": "1"}, False),  # torchrun, second node's first process
        ({"SLURM_PROCID": "3", "LOCAL_RANK": "1"}, False),  # srun
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "0", "RANK": "0"}, True),
    ],
)
def test_rank_zero_is_read_from_every_launchers_variables(monkeypatch, env: dict[str, str], zero: bool) -> None:
    """train.py read LOCAL_RANK and NODE_RANK only: under a two-node torchrun (no NODE_RANK) each node's first
    process wrote config.yaml and appended the same change record to changes.jsonl."""
    from gan_lightning.distributed import launched_as_rank_zero

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launched_as_rank_zero() is zero
