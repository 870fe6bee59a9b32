"""Run directories: where a run goes, its lock, what its ``summary.json`` says, and a ``train`` subprocess."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gan_lightning.distributed import launched_as_rank_zero, launcher_process_count, launcher_run_id
from gan_lightning.registry import ConfigError

RUN_DIR_ENV = "GAN_LIGHTNING_RUN_DIR"  # lets DDP worker processes find the run directory of rank 0
RESUME_ENV = "GAN_LIGHTNING_RESUME"
LOCK_NAME = "run.lock"


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``summary.json``, or None when it is missing or unreadable."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run of this package: checkpoints, a summary, or a config.yaml it wrote."""
    if (path / "checkpoints").is_dir() or (path / "summary.json").is_file():
        return True
    config = path / "config.yaml"
    try:
        return config.is_file() and config.read_text(errors="replace").startswith("exp: ")
    except OSError:
        return False


def latest_checkpoint(run_dir: Path) -> Path | None:
    """What ``resume=auto`` continues: checkpoints/last.ckpt, else the kept ``step=N.ckpt`` of the largest N (a run
    killed before its first last.ckpt, with ``log.keep_every`` below ``log.ckpt_every``), else None."""
    ckpts = run_dir / "checkpoints"
    if (ckpts / "last.ckpt").is_file():
        return ckpts / "last.ckpt"
    kept = {}
    for path in ckpts.glob("step=*.ckpt"):
        with contextlib.suppress(ValueError):
            kept[int(path.name[len("step=") : -len(".ckpt")])] = path
    return kept[max(kept)] if kept else None


def refuse_foreign_folder(folder: Path, marker: str, ours: Callable[[str], bool], what: str, fix: str) -> None:
    """Refuse ``folder``, the ``out=`` of a study or a sweep, when it holds a training run, or, before its
    ``marker`` file exists, any entry ``ours`` does not name: the reports would be written among or over them."""
    if is_run_dir(folder):
        raise ConfigError(f"{folder} holds a training run (config.yaml, summary.json or checkpoints/); {fix}")
    if folder.is_dir() and not (folder / marker).is_file():
        foreign = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME and not ours(p.name))
        if foreign:
            listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ConfigError(f"{folder} is not {what} (it holds {listed}); {fix}")


def check_out_dir(run_dir: Path) -> None:
    """Refuse an ``out=`` folder that holds files but no run (a project, a study): a run would write its
    config.yaml, metrics.csv and the rest among them."""
    if not run_dir.is_dir() or is_run_dir(run_dir):
        return
    others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
    if others:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise ConfigError(
            f"out={run_dir} is not a run but holds other files ({shown}), which a run would write among or over; "
            "choose a new or empty out=DIR"
        )


def check_branch_target(run_dir: Path, ckpt: Path) -> None:
    """``resume=CKPT out=DIR`` continues the checkpoint's own run in DIR or branches into a new or empty DIR:
    refuse a DIR holding another run, whose summary and metrics the continuation would write over."""
    check_out_dir(run_dir)
    own = ckpt.resolve().parent.parent if ckpt.parent.name == "checkpoints" else None
    if is_run_dir(run_dir) and (own is None or run_dir.resolve() != own):
        raise ConfigError(
            f"out={run_dir} holds another run than the checkpoint's ({ckpt}), which the continuation would write "
            "over; resume into the checkpoint's own run (leave out= away) or branch into a new or empty out=DIR"
        )


def new_run_dir(cfg: DictConfig) -> Path:
    """runs/<exp>/<date-time>-s<seed>, with a .N suffix when that exists already. Processes started together by
    an outside launcher (torchrun, srun) each resolve it, so theirs is named by the launcher's shared run id:
    runs/<exp>/job-<id>-s<seed>."""
    if launcher_process_count() > 1:
        run_id = launcher_run_id()
        if run_id is None:
            raise ConfigError(
                f"started as one of {launcher_process_count()} processes by a launcher without a shared run id "
                "(torchrun's --rdzv-id, SLURM_JOB_ID): give out=DIR so that every process writes the same run"
            )
        path = Path("runs") / cfg.exp / f"job-{run_id}-s{cfg.seed}"
        if latest_checkpoint(path) is not None and not cfg.resume:
            raise ConfigError(f"{path} already holds a run of this job; pass resume=auto to continue it, or out=DIR")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / cfg.exp / f"{stamp}-s{cfg.seed}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}.{i}"), i + 1
    return path


def resolve_run(cfg: DictConfig) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None), following ``out`` and ``resume``."""
    if os.environ.get(RUN_DIR_ENV):  # a DDP worker: rank 0 decided already
        resume = os.environ.get(RESUME_ENV) or None
        return Path(os.environ[RUN_DIR_ENV]), Path(resume) if resume else None
    resume = cfg.resume
    if resume and resume != "auto":
        ckpt = Path(resume)
        if cfg.out:
            check_branch_target(Path(cfg.out), ckpt)
            return Path(cfg.out), ckpt
        parent = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.resolve().parent.parent
        return (parent if is_run_dir(parent) else new_run_dir(cfg)), ckpt
    if cfg.out:
        run_dir = Path(cfg.out)
        check_out_dir(run_dir)
        latest = latest_checkpoint(run_dir)
        if resume == "auto":
            return run_dir, latest
        if latest is not None:
            holder = lock_holder(run_dir)
            if holder:
                raise ConfigError(locked_message(run_dir, holder))
            status = (read_summary(run_dir) or {}).get("status")
            raise ConfigError(
                f"{run_dir} already holds a run (checkpoints/{latest.name}, status {status}); "
                "pass resume=auto to continue it, or choose another out=DIR"
            )
        return run_dir, None
    if resume == "auto":  # newest unfinished run of this experiment and seed
        root = Path("runs") / cfg.exp
        named = [*root.glob(f"*-s{cfg.seed}"), *root.glob(f"*-s{cfg.seed}.*")]  # .N: started in the same second
        for run_dir in sorted((p for p in named if p.is_dir()), key=run_dir_order, reverse=True):
            last = latest_checkpoint(run_dir)
            if last is not None and (read_summary(run_dir) or {}).get("status") != "completed":
                return run_dir, last
    return new_run_dir(cfg), None


def run_dir_order(path: Path) -> tuple[str, int]:
    """Sort key of runs/<exp>/<date-time>-s<seed>[.N]: by time, then N (a name without .N first)."""
    stem, dot, n = path.name.rpartition(".")
    return (stem, int(n)) if dot and n.isdigit() else (path.name, 0)


def is_worker() -> bool:
    """A process that rank 0 of its run started or that is not rank 0 (DDP, torchrun, SLURM)."""
    return bool(os.environ.get(RUN_DIR_ENV)) or not launched_as_rank_zero()


def _holder_text(path: Path) -> str:
    """'pid P on HOST (since T)' from a lock file, or what the file says, or ''."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}" + (f" (since {info['since']})" if info.get("since") else "")
    except (ValueError, TypeError, KeyError):
        return f"pid {text}" if text.isdigit() else text[:200]


def locked_message(run_dir: Path, holder: str, what: str = "run") -> str:
    return (
        f"{what} directory {run_dir} is locked by {holder}: another process is running this {what} "
        f"(one process per {what} directory). Wait for it or stop it, or choose another out=DIR"
    )


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the lock of ``run_dir`` ('pid P on HOST ...'), or None when nobody does."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        return _holder_text(path) or "another process"
    finally:
        os.close(fd)


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory, or say in one line why ``out=`` cannot be one (a file is in the
    way, the disk is read-only, no permission)."""
    blocking = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        where = "" if blocking == run_dir else f" (inside out={run_dir})"
        raise ConfigError(f"out={run_dir}: {blocking} is a file, not a directory{where}; choose another out=DIR")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reasons = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)"}
        reasons[errno.EPERM] = reasons[errno.EACCES]
        if e.errno not in reasons:
            raise
        where = str(e.filename or run_dir)
        raise ConfigError(f"out={run_dir}: {where} {reasons[e.errno]}; choose another out=DIR") from None


class RunLock:
    """One process per run directory: an exclusive ``flock`` on ``<run_dir>/run.lock`` for the
    life of the run. The kernel drops a flock when its holder dies, however it dies, so a lock is
    stale exactly when its file can be locked again; the file holds the holder's pid and host for
    the error a second process gets and is removed on release (a leftover one means its holder
    died: it is taken over with a notice). Directories the lock created are removed on release
    while still empty (a run that failed before writing anything leaves nothing)."""

    def __init__(self, run_dir: Path, what: str = "run") -> None:
        self.what = what  # named in the error: "run" or "study"
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self._created = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        make_run_dir(self.run_dir)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = ""
                for _ in range(20):  # the holder writes its pid just after taking the lock
                    holder = _holder_text(self.path)
                    if holder:
                        break
                    time.sleep(0.05)
                self._remove_created()
                raise ConfigError(locked_message(self.run_dir, holder or "another process", self.what)) from None
            try:  # a releasing holder unlinks the file: the locked file must still be the one at the path
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        stale = _holder_text(self.path)
        if stale:
            print(f"[gan_lightning] taking over the stale lock of {self.run_dir}: {stale} is gone", file=sys.stderr)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for path in self._created:  # leaf first
            try:
                path.rmdir()
            except OSError:
                break
        self._created = []


@contextmanager
def claimed_run(cfg: DictConfig) -> Iterator[tuple[Path, Path | None]]:
    """``resolve_run`` with the run directory locked for the block (not in a DDP worker, whose
    rank 0 holds the lock). Under the lock an ``out=DIR`` is resolved again, so a run that
    finished in DIR meanwhile is seen."""
    run_dir, resume = resolve_run(cfg)
    if is_worker():
        yield run_dir, resume
        return
    with RunLock(run_dir):
        if cfg.out and not (cfg.resume and cfg.resume != "auto"):
            run_dir, resume = resolve_run(cfg)
        yield run_dir, resume


@contextmanager
def worker_env(run_dir: Path, resume: Path | None) -> Iterator[None]:
    """Tell DDP worker processes the run directory and checkpoint for the block; then restore."""
    saved = {key: os.environ.get(key) for key in (RUN_DIR_ENV, RESUME_ENV)}
    os.environ[RUN_DIR_ENV] = str(run_dir)
    os.environ[RESUME_ENV] = str(resume) if resume else ""
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train_command(overrides: list[str], out: str | Path) -> list[str]:
    """``gan-lightning train`` in this interpreter, into ``out``, resuming what is there."""
    return [sys.executable, "-m", "gan_lightning", "train", *overrides, f"out={out}", "resume=auto"]


def threads_env(jobs: int) -> dict[str, str]:
    """Each of ``jobs`` parallel torch processes gets its share of the cores (threads = cores /
    jobs): two processes with 2 threads each on 2 cores ran 65x slower than one (measured)."""
    if jobs <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_train(overrides: list[str], out: str | Path, log: Path, env: Mapping[str, str] | None = None) -> int:
    """Run ``train_command`` as a subprocess, appending its output to ``log``; returns its exit code."""
    cmd = train_command(overrides, out)
    child_env = {k: v for k, v in os.environ.items() if k not in (RUN_DIR_ENV, RESUME_ENV)}  # not a DDP worker
    child_env["GAN_LIGHTNING_PROGRESS"] = "0"  # its log gets a progress line per 10% of the run, never a bar
    child_env.update(env or {})
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=child_env).returncode


def last_error(log: Path) -> str | None:
    """The last ``error: ...`` message of the newest command in a ``run_train`` log, with the lines after it (a
    message's listing and fix), if any."""
    try:
        text = log.read_text()
    except OSError:
        return None
    lines = text.rsplit("\n$ ", 1)[-1].splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    if not starts:
        return None
    return "\n".join([lines[starts[-1]][len("error: ") :], *lines[starts[-1] + 1 :]]).rstrip()
