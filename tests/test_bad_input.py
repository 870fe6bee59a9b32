"""Bad input and a hostile environment: each is one line naming the problem and the fix, with a
documented exit code, never a traceback, and nothing half-written left behind."""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from gan_lightning import train as train_module
from gan_lightning.cli import EXIT_WRITE, main
from tests.conftest import REPO, TINY, make_folder_tree, make_mnist_tree, tiny_for


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def g_step(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True)["gan_lightning"]["g_step"])


def read_status(run_dir: Path) -> str:
    import json

    return str(json.loads((run_dir / "summary.json").read_text())["status"])


TOY = ["train", "exp=gmm_ring", *TINY, "steps=30", "log.ckpt_every=10", "log.every=10"]


# ----------------------------------------------------------------------------- disk full
def test_disk_full_during_a_checkpoint_is_one_line_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second checkpoint meets ENOSPC half-way: exit 74 with one line naming the file and the
    free space; no temporary file left; last.ckpt of step 10 intact; status failed; resume=auto
    finishes the run once there is space."""
    real = L.Trainer.save_checkpoint
    calls: list[Path] = []

    def full_disk(self: L.Trainer, filepath: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(Path(filepath))
        if len(calls) == 1:
            return real(self, filepath, *args, **kwargs)
        Path(filepath).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))

    monkeypatch.setattr(L.Trainer, "save_checkpoint", full_disk)
    run_dir = tmp_path / "run"
    assert main([*TOY, f"out={run_dir}"]) == EXIT_WRITE
    (line,) = error_lines(capsys.readouterr().err)
    assert "last.ckpt" in line and "No space left on device" in line and "free" in line, line
    assert "resume=auto" in line
    assert leftovers(tmp_path) == []
    assert g_step(run_dir / "checkpoints" / "last.ckpt") == 10
    assert read_status(run_dir) == "failed"

    monkeypatch.setattr(L.Trainer, "save_checkpoint", real)  # space freed
    assert main([*TOY, f"out={run_dir}", "resume=auto"]) == 0
    assert read_status(run_dir) == "completed"
    assert g_step(run_dir / "checkpoints" / "last.ckpt") == 30


def test_disk_full_on_a_real_small_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same on a real tmpfs (root only): a callback fills the disk after the first
    checkpoint; removing the filler is 'freeing space'."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    filler = disk / "filler"

    class FillDisk(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
            if pl_module.g_step == 11:  # after the first checkpoint, leave less than one free
                ckpt = (disk / "run" / "checkpoints" / "last.ckpt").stat().st_size
                free = shutil.disk_usage(disk).free
                with open(filler, "wb") as f:
                    f.write(b"\0" * max(0, free - ckpt // 2))

    train = train_module.train
    try:
        monkeypatch.setattr(train_module, "train", functools.partial(train, callbacks=[FillDisk()]))
        assert main([*TOY, f"out={disk / 'run'}"]) == EXIT_WRITE
        (line,) = error_lines(capsys.readouterr().err)
        assert "last.ckpt" in line and "free" in line, line
        assert leftovers(disk) == []
        assert g_step(disk / "run" / "checkpoints" / "last.ckpt") == 10
        assert read_status(disk / "run") == "failed"
        monkeypatch.setattr(train_module, "train", train)
        filler.unlink()
        assert main([*TOY, f"out={disk / 'run'}", "resume=auto"]) == 0
        assert read_status(disk / "run") == "completed"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_any_full_disk_write_is_one_line_with_the_file_and_free_space(tmp_path: Path) -> None:
    from gan_lightning.cli import write_failure

    line = write_failure(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "samples" / "x.png")))
    assert line.startswith(f"cannot write {tmp_path / 'samples' / 'x.png'}: No space left on device (")
    assert "free on that disk" in line and "resume=auto" in line and "\n" not in line


# ----------------------------------------------------------------------------- data files
def one_error(err: str) -> str:
    """The error line, which must be the only one and the last of stderr."""
    (line,) = error_lines(err)
    assert err.rstrip().splitlines()[-1] == line, err
    return line


def test_a_truncated_gz_is_named_and_never_half_unpacked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_mnist_tree(tmp_path / "data", "FashionMNIST", n_train=200, n_test=50, gz=True)
    raw = root / "FashionMNIST" / "raw"
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    args = ["train", "exp=dcgan", *TINY, "steps=1", f"data.data_dir={root}", "data.download=false"]
    args.append(f"data.system_dir={tmp_path / 'no-debian-package'}")
    for _ in range(2):  # the second run says the same: nothing half-unpacked is left to trip over
        assert main(args) == 2
        line = one_error(capsys.readouterr().err)
        assert str(gz) in line and "truncated" in line and "dataset-fashion-mnist" in line, line
        assert not (raw / "train-images-idx3-ubyte").exists()
        assert leftovers(root) == []


def test_a_truncated_file_of_debians_package_says_reinstall(tmp_path: Path) -> None:
    from gan_lightning.config import load_config
    from gan_lightning.data import build_datamodule
    from gan_lightning.data.mnist import MissingDataError

    system = make_mnist_tree(tmp_path / "sys", "x", n_train=100, n_test=20, gz=True) / "x" / "raw"
    gz = system / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:30])
    cfg = load_config(["exp=dcgan", f"data.data_dir={tmp_path / 'd'}", "data.download=false"])
    cfg.data.system_dir = str(system)
    with pytest.raises(MissingDataError, match="apt-get install --reinstall dataset-fashion-mnist") as e:
        build_datamodule(cfg).prepare()
    assert str(gz) in str(e.value)
    assert leftovers(tmp_path / "d") == []


def test_a_corrupt_image_in_a_folder_dataset_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_folder_tree(tmp_path / "folders", n=3, size=(32, 32))
    bad = root / "trainB" / "1.png"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    args = ["train", "exp=cyclegan_folder", *tiny_for(["exp=cyclegan_folder"]), "steps=1", f"data.root={root}"]
    args.append("data.image_size=32")
    assert main(args) == 2
    line = one_error(capsys.readouterr().err)
    assert str(bad) in line and "replace it" in line, line
    (root / "testA" / "0.png").write_bytes(b"not an image")  # the fid command reads folders too
    assert main(["fid", str(root / "testA"), str(root / "testB"), "--features", "classifier"]) == 2
    assert str(root / "testA" / "0.png") in one_error(capsys.readouterr().err)


def test_a_npy_of_objects_given_to_fid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"image": 1}, None], dtype=object), allow_pickle=True)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 1, 8, 8), dtype=np.float32))
    assert main(["fid", str(objects), str(good), "--features", "classifier"]) == 2
    line = one_error(capsys.readouterr().err)
    assert str(objects) in line and "objects" in line and "float in [0, 1]" in line, line


# ----------------------------------------------------------------------------- config
def test_a_type_error_names_the_key_the_value_and_the_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "exp=gmm_ring", "steps=abc"]) == 2
    line = one_error(capsys.readouterr().err)
    assert line == "error: bad value for 'steps' (from the command line): expected an integer, got 'abc'"
    assert main(["train", "exp=gmm_ring", "log.progress=maybe"]) == 2
    assert "expected true or false, got 'maybe'" in one_error(capsys.readouterr().err)


def test_an_unknown_precision_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gan_lightning", "train", "exp=gmm_ring", "trainer.precision=banana", f"out={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    line = one_error(p.stderr)
    assert "'trainer.precision'" in line and "banana" in line and "32-true" in line and "bf16-mixed" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        (["exp=cyclegan_folder", "data.image_size=16"], "needs 24: use data.image_size >= 24 or nets.patch_layers=2"),
        (["exp=cyclegan_folder", "data.image_size=30"], "multiple of 4, got 30: use 28 or 32"),
        (["exp=pix2pix_edges", "nets.patch_layers=4", "data.image_size=28"], "needs 48"),
    ],
)
def test_an_image_size_the_nets_cannot_take_is_refused_at_config_time(
    args: list[str], needed: str, folder_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = [f"data.root={folder_root}"] if "exp=cyclegan_folder" in args else []
    assert main(["train", *args, *data, *tiny_for(args), "steps=1"]) == 2
    line = one_error(capsys.readouterr().err)
    assert "bad value for 'data.image_size'" in line and needed in line, line


def test_out_that_is_a_file_is_refused_and_the_file_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["train", "exp=gmm_ring", "steps=2", f"out={target}"]) == 2
    line = one_error(capsys.readouterr().err)
    assert str(target) in line and "is a file" in line and "out=" in line
    assert target.read_text() == "mine"
    inner = target / "run"  # a file as a parent directory
    assert main(["train", "exp=gmm_ring", "steps=2", f"out={inner}"]) == 2
    assert str(target) in one_error(capsys.readouterr().err)


def test_out_on_a_read_only_disk_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root ignores permission bits, so the read-only file system is simulated at mkdir."""
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.is_relative_to(tmp_path / "ro"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["train", "exp=gmm_ring", "steps=2", f"out={tmp_path / 'ro' / 'run'}"]) == 2
    line = one_error(capsys.readouterr().err)
    assert "read-only" in line.lower() and str(tmp_path / "ro") in line and "out=" in line


def test_a_full_disk_while_writing_metrics_csv_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    from gan_lightning.callbacks.csv_logger import MetricsCSV

    logger = MetricsCSV(tmp_path)
    logger.log_metrics({"loss/d": 1.0}, step=1)
    before = (tmp_path / "metrics.csv").read_text()

    def full(self: Any, rows: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "metrics.csv.tmp"))

    monkeypatch.setattr(csv.DictWriter, "writerows", full)
    with pytest.raises(OSError):
        logger.log_metrics({"loss/d": 2.0}, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # no metrics.csv.tmp left
    assert (tmp_path / "metrics.csv").read_text() == before  # the last whole file is kept


def test_a_study_report_cut_off_by_a_full_disk_keeps_the_last_whole_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.md, results.md/.csv, protocol.md, lab.md were written in place: a full disk left half a table."""
    from gan_lightning import files

    files.write_text(tmp_path / "report.md", "| old | table |\n")
    real_write = Path.write_text

    def half(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        real_write(self, text[:3], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", half)
    with pytest.raises(OSError):
        files.write_text(tmp_path / "report.md", "| new | table |\n")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    assert (tmp_path / "report.md").read_text() == "| old | table |\n"
    for module in ("study", "sweep", "protocol", "lab", "truncation"):  # every writer of a table goes through it
        source = (REPO / "gan_lightning" / f"{module}.py").read_text()
        assert '.md").write_text(' not in source and 'open(sdir / "results.csv", "w"' not in source, module


# ----------------------------------------------------------------------------- numbers and files of other commands
@pytest.fixture(scope="module")
def tiny_image_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny DCGAN checkpoint for the module's refusals (none of them writes beside it)."""
    from tests.conftest import make_mnist_tree

    tmp = tmp_path_factory.mktemp("tiny_ckpt")
    root = make_mnist_tree(tmp / "data", "FashionMNIST")
    args = ["train", "exp=dcgan", "data=fashion_mnist", f"data.data_dir={root}", "data.download=false"]
    assert main([*args, *tiny_for(args), "steps=2", f"out={tmp / 'r'}"]) == 0
    return tmp / "r" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("n", "metrics", "says"),
    [("0", "fid", "'--n'"), ("1", "fid", "at least 2"), ("4", "prdc", "prdc needs at least 6")],
)
def test_evaluate_with_too_few_samples_for_a_metric_is_one_line(
    tiny_image_ckpt: Path, capsys: pytest.CaptureFixture[str], n: str, metrics: str, says: str
) -> None:
    assert main(["evaluate", str(tiny_image_ckpt), "--n", n, "--metrics", metrics]) == 2
    assert says in one_error(capsys.readouterr().err)
    assert main(["evaluate", str(tiny_image_ckpt), "--n", "50", "--metrics", "nosuch"]) == 2
    assert "'--metrics'" in one_error(capsys.readouterr().err)  # the field that is wrong, not --n


@pytest.mark.parametrize("key", ["metrics.n", "metrics.n_ref"])
def test_training_with_too_few_samples_for_prdc_is_refused_at_config_time(key: str) -> None:
    from gan_lightning.config import load_config
    from gan_lightning.registry import ConfigError

    with pytest.raises(ConfigError, match=rf"'{key}': metric prdc needs at least 6"):
        load_config(["exp=quickstart", "metrics.names=[prdc]", f"{key}=4"])


def test_fid_of_a_single_image_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, many = tmp_path / "one.npy", tmp_path / "many.npy"
    np.save(one, np.zeros((1, 1, 8, 8), dtype=np.float32))
    np.save(many, np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32))
    assert main(["fid", str(one), str(many)]) == 2  # refused before the Inception trunk is built
    line = one_error(capsys.readouterr().err)
    assert str(one) in line and "at least 2" in line, line


@pytest.mark.parametrize("key", ["jobs", "timeout_min", "gpus_per_job"])
def test_a_study_number_that_is_not_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    assert main(["study", "exp=gmm_ring", "seeds=0", f"{key}=abc", f"out={tmp_path / 's'}"]) == 2
    line = one_error(capsys.readouterr().err)
    assert f"'{key}'" in line and "'abc'" in line, line


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("method: grid\nparameters: {a: [1\n", "not valid YAML"),
        ("method: grid\nparameters: {optim.lr_g: 0.001}\ncommand:\n  - x\n  - ${args_no_hyphens}\n", "optim.lr_g"),
        ("method: grid\nparameters: [a, b]\ncommand:\n  - x\n  - ${args_no_hyphens}\n", "a mapping"),
        ("method: grid\nparameters:\ncommand:\n  - x\n  - ${args_no_hyphens}\n", "a mapping"),
    ],
)
def test_a_malformed_sweep_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--offline"]) == 2
    line = one_error(capsys.readouterr().err)
    assert str(path) in line and says in line, line


def test_compare_of_a_corrupt_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "report.json").write_text('{"final": {')  # cut off
    (tmp_path / "b" / "report.json").write_text('{"final": {}, "per_seed": []}')
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    line = one_error(capsys.readouterr().err)
    assert str(tmp_path / "a" / "report.json") in line, line


def test_a_corrupt_test_image_in_a_folder_dataset_stops_the_run_before_training(tmp_path: Path, capsys) -> None:
    """testA/ and testB/ were first read at the first sample grid, after training had begun (hours in, with a
    large sample_every): a corrupt test image is named before any step now."""
    root = make_folder_tree(tmp_path / "folders", n=3, size=(32, 32))
    bad = root / "testA" / "0.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "run"
    args = ["train", "exp=cyclegan_folder", *tiny_for(["exp=cyclegan_folder"]), "steps=2", f"data.root={root}"]
    assert main([*args, "data.image_size=32", f"out={out}", "metrics.names=[]", "log.sample_every=2"]) == 2
    assert str(bad) in one_error(capsys.readouterr().err)
    summary = out / "summary.json"
    assert not summary.is_file() or json.loads(summary.read_text())["steps_done"] == 0


def test_small_unequal_translation_folders_make_their_sample_grid(tmp_path: Path) -> None:
    """The grid took the first 8 images of A and of B apart: 3 A and 2 B images failed to stack (a traceback)."""
    from tests.helpers import run

    root = make_folder_tree(tmp_path / "folders", n=3, size=(32, 32))
    for name in ("trainB/2.png", "testB/2.png"):
        (root / name).unlink()
    result = run("exp=cyclegan_folder", f"data.root={root}", "data.image_size=32", "steps=2", "log.sample_every=1",
                 f"out={tmp_path / 'run'}", "metrics.names=[]")  # fmt: skip
    assert result.status == "completed", result.summary.get("error")
    assert len(list((result.run_dir / "samples").glob("step_*.png"))) >= 2


@pytest.mark.parametrize("exp", ["cyclegan_edges", "simgan_fashion"])
def test_a_subset_too_small_for_two_unpaired_halves_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exp: str
) -> None:
    """Unpaired Fashion tasks split the training images into disjoint A and B halves: data.subset=1 left A
    empty and the first batch divided by zero (a traceback, after config.yaml and summary.json were written)."""
    root = make_mnist_tree(tmp_path / "data", "FashionMNIST")
    out = tmp_path / "run"
    args = ["train", f"exp={exp}", f"data.data_dir={root}", "data.download=false", "data.subset=1", "steps=1"]
    assert main([*args, *tiny_for(args), "metrics.names=[]", f"out={out}"]) == 2
    line = one_error(capsys.readouterr().err)
    assert "data.subset" in line and ">= 2" in line, line
    assert not (out / "summary.json").is_file()


def test_train_evaluator_on_data_without_a_domain_classifier_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train-evaluator data=unpaired_folder` (no labels) gave an AttributeError traceback."""
    root = make_folder_tree(tmp_path / "folders", n=3, size=(32, 32))
    assert main(["train-evaluator", "data=unpaired_folder", f"data.root={root}"]) == 2
    assert "no domain classifier" in one_error(capsys.readouterr().err)


def test_a_full_disk_while_a_resume_rewrites_config_yaml_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """config.yaml was rewritten in place at every resume: a full disk left half a config, which still parses
    as YAML (sections missing). It is written atomically now: the old file stays whole."""
    run_dir = tmp_path / "run"
    toy = ["train", "exp=gmm_ring", *TINY, "steps=2", f"out={run_dir}"]
    assert main(toy) == 0
    before = (run_dir / "config.yaml").read_text()
    real_write = Path.write_text

    def half(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if self.name.startswith("config.yaml"):
            real_write(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half)
    assert main([*toy[:-2], "steps=4", f"out={run_dir}", "resume=auto"]) == EXIT_WRITE
    monkeypatch.undo()
    assert "No space left on device" in one_error(capsys.readouterr().err)
    assert (run_dir / "config.yaml").read_text() == before
    assert leftovers(run_dir) == []


# ----------------------------------------------------------------------------- outputs of the commands (review)
def test_train_refuses_an_out_folder_that_holds_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """out=DIR wrote into any existing folder (a project, a study), replacing a config.yaml and metrics.csv that
    were not a run's. A non-empty folder that is not a run is refused; an empty one is used."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("my: own config\n")
    toy = ["train", "exp=gmm_ring", *TINY, "steps=2"]
    assert main([*toy, f"out={project}"]) == 2
    assert "is not a run" in one_error(capsys.readouterr().err)
    assert (project / "config.yaml").read_text() == "my: own config\n" and not (project / "checkpoints").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*toy, f"out={empty}"]) == 0


def test_a_directory_given_as_a_checkpoint_names_the_checkpoints_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "ring"
    assert main(["train", "exp=gmm_ring", *TINY, "steps=2", f"out={run_dir}"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run_dir), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 2
    line = one_error(capsys.readouterr().err)
    assert "is a directory" in line and str(run_dir / "checkpoints" / "last.ckpt") in line, line


def test_sample_on_a_full_disk_keeps_the_old_file_and_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """np.save wrote straight onto --out: a full disk replaced the old samples with a truncated file, and the
    error was a traceback."""
    import numpy as np

    run_dir = tmp_path / "ring"
    assert main(["train", "exp=gmm_ring", *TINY, "steps=2", f"out={run_dir}"]) == 0
    out = tmp_path / "s.npy"
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["sample", ckpt, "--n", "5", "--out", str(out)]) == 0
    before = np.load(out)
    real_save = np.save

    def full(file: Any, arr: Any, *args: Any, **kwargs: Any) -> None:
        real_save(file, arr[:1], *args, **kwargs)  # a part of it, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), getattr(file, "name", str(file)))

    monkeypatch.setattr(np, "save", full)
    capsys.readouterr()
    assert main(["sample", ckpt, "--n", "50", "--out", str(out)]) == EXIT_WRITE
    monkeypatch.undo()
    assert "No space left on device" in one_error(capsys.readouterr().err)
    assert np.array_equal(np.load(out), before) and leftovers(tmp_path) == []


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out naming a directory (or a path under a file) gave an IsADirectoryError/NotADirectoryError traceback."""
    run_dir = tmp_path / "ring"
    assert main(["train", "exp=gmm_ring", *TINY, "steps=2", f"out={run_dir}"]) == 0
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    (tmp_path / "adir.npy").mkdir()
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "adir.npy", tmp_path / "afile" / "s.npy"):
        capsys.readouterr()
        assert main(["sample", ckpt, "--n", "5", "--out", str(out)]) == 2
        assert str(out.parent if out.parent.name == "afile" else out) in one_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["fid", "a", "b", "--n", "-2"], "--n"),  # -2 took all but the last two images
        (["fid", "a", "b", "--n", "0"], "--n"),
        (["sweep", "experiments/sweeps/gmm_ring_lr.yaml", "--offline", "--count", "0"], "--count"),
    ],
)
def test_counts_below_their_minimum_are_refused(argv: list[str], key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert f"'{key}'" in one_error(capsys.readouterr().err)


def test_compare_output_paths_are_checked_before_anything_is_computed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare A B --out cmp.png` wrote the JSON to cmp.png and then the plot over it (exit 0)."""
    for flag, value in (("--out", "cmp.png"), ("--plot", "cmp.json")):
        assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), flag, str(tmp_path / value)]) == 2
        assert f"'{flag}'" in one_error(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_a_full_disk_while_writing_a_picture_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plots and grids were saved straight onto their path: a full disk left a 0-byte or cut PNG (review)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from gan_lightning.callbacks.samples import save_grid
    from gan_lightning.files import save_figure

    def full(self: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        Path(fp).write_bytes(b"\x89PNG")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    grid, figure = tmp_path / "grid.png", tmp_path / "curves.png"
    save_grid(torch.rand(4, 1, 8, 8), grid)
    fig, _ = plt.subplots()
    save_figure(fig, figure, dpi=50)
    before = grid.read_bytes(), figure.read_bytes()
    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError):
        save_grid(torch.rand(4, 1, 8, 8), grid)
    monkeypatch.undo()
    monkeypatch.setattr(type(fig), "savefig", lambda self, fp, **kw: full(None, fp))
    with pytest.raises(OSError):
        save_figure(fig, figure, dpi=50)
    monkeypatch.undo()
    plt.close(fig)
    assert (grid.read_bytes(), figure.read_bytes()) == before and leftovers(tmp_path) == []
