"""Files the package writes: strict JSON, atomic fsynced commits, one-line disk errors."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def json_text(data: Any) -> str:
    """Strict JSON text of ``data``, as every JSON file of this package is written: a non-finite
    float (NaN, +-inf, e.g. the mode KL of samples that hit no mode) is written as ``null``, since
    ``NaN``/``Infinity`` are not JSON; tensors and numpy scalars are written as numbers."""
    return json.dumps(_finite(data), indent=2, allow_nan=False, default=lambda o: _finite(float(o))) + "\n"


class RunWriteError(OSError):
    """A file of the run could not be written (disk full, quota, I/O error); the message says which
    file, the free space, and what was kept."""


def human_bytes(n: float) -> str:
    """'512 bytes', '12.0 KiB', '1.2 MiB', '3.4 GiB'."""
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def free_space(path: Path) -> str:
    """Free space on the disk of ``path`` (or of its nearest existing parent), e.g. '1.2 MiB'."""
    for folder in (path, *path.parents):
        try:
            return human_bytes(shutil.disk_usage(folder).free)
        except OSError:
            continue
    return "unknown"


def write_error_line(path: Path, error: OSError) -> str:
    """'cannot write PATH: No space left on device (12.0 KiB free on that disk)'."""
    reason = error.strerror or str(error) or os.strerror(errno.EIO)
    return f"cannot write {path}: {reason} ({free_space(path.parent)} free on that disk)"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        os.fsync(fd)
    os.close(fd)


def sibling_tmp(path: Path) -> Path:
    """A new, empty temporary file beside ``path`` whose name no other process shares (two
    processes filling one cache must not write, rename or delete each other's partial file)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def commit_file(tmp: Path, path: Path) -> None:
    """fsync ``tmp`` and rename it to ``path`` (then fsync the folder): after a crash or power
    loss ``path`` is the old file or the whole new one."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (a crash never leaves half a file, a failed write no temporary file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A new temporary file beside ``path`` for the block to write; it replaces ``path`` whole when the block
    ends, and is removed when the block fails (a full disk leaves the old file as it was)."""
    tmp = sibling_tmp(Path(path))
    try:
        yield tmp
        commit_file(tmp, Path(path))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_npy(path: Path, array: Any) -> None:
    """``np.save`` atomically (``replacing``)."""
    import numpy as np

    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def save_figure(fig: Any, path: Path, **kwargs: Any) -> None:
    """A matplotlib figure saved atomically (``replacing``), in the format of ``path``'s suffix."""
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``json_text(data)`` atomically (``write_text``)."""
    write_text(path, json_text(data))
