"""Reading checkpoints and weight files with errors that name the file and what is wrong with it.

A file given by a user is only ever loaded with ``torch.load(weights_only=True)``: one that would
need to unpickle anything but tensors and containers (and so could run code) is refused unread.
"""

from __future__ import annotations

import hashlib
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from gan_lightning.registry import ConfigError, first_line

NOT_PLAIN = "is not a plain weights file"


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: missing, corrupt, truncated, unsafe, foreign or incompatible."""


def pickled_callables(path: Path, error: BaseException) -> list[str]:
    """The callables other than tensor plumbing that a pickle refused by the weights-only loader
    asks for (e.g. 'builtins.exec'), from torch's message or by parsing (never running) the
    pickle; empty for bytes that are not such a pickle (corrupt or truncated)."""
    found = re.search(r"GLOBAL (\S+) was not an allowed global|whose module (\S+) is blocked", str(error))
    if found:
        return [found.group(1) or found.group(2)]
    from torch import _weights_only_unpickler

    allowed: dict[str, Any] = getattr(_weights_only_unpickler, "_get_allowed_globals", dict)()
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:
        return []
    return [n for n in dict.fromkeys(names) if n not in allowed]


def load_weights_only(path: str | Path, what: str, hint: str = "", error: type[ConfigError] = CheckpointError) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; raises ``error`` naming ``what`` and the file
    when it holds pickled objects other than tensors (refused unread) or cannot be read."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # a refused plain pickle would warn about its protocol first
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        names = pickled_callables(path, e)
        if names:
            raise error(
                f"{what} {path} {NOT_PLAIN}: unpickling it would call {', '.join(names[:4])}, which could run "
                f"code, so it was refused unread. {hint}".strip()
            ) from None
        reason = first_line(e)
        raise error(f"{what} {path} is corrupt or truncated and cannot be read ({reason}). {hint}".strip()) from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a gan_lightning checkpoint (on CPU, weights only) or raise CheckpointError."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for folder in (path / "checkpoints", path) for p in folder.glob("*.ckpt"))
        hint = f"; give a checkpoint file, e.g. {found[0] if len(found) == 1 else path / 'checkpoints' / 'last.ckpt'}"
        listed = f" (checkpoints in it: {', '.join(str(p) for p in found[:4])})" if found else " with no .ckpt files"
        raise CheckpointError(f"checkpoint {path} is a directory{listed}{hint}")
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            others = sorted(p.name for p in path.parent.glob("*.ckpt"))
            hint = f" Checkpoints in {path.parent}: {', '.join(others)}." if others else ""
        raise CheckpointError(f"checkpoint {path} does not exist.{hint}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the write was cut off; use another checkpoint")
    ckpt = load_weights_only(
        path,
        "checkpoint",
        "Use another checkpoint of the run (checkpoints/best.ckpt or a step=N.ckpt) or start anew.",
    )
    if not isinstance(ckpt, dict) or "gan_lightning" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"checkpoint {path} was not written by gan_lightning (no 'gan_lightning' entry); "
            "give a checkpoints/*.ckpt file of a gan_lightning run"
        )
    meta = ckpt["gan_lightning"]
    from gan_lightning.models.base import CHECKPOINT_FORMAT

    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')} (gan_lightning {meta.get('version')}); "
            f"this version reads format {CHECKPOINT_FORMAT}"
        )
    return ckpt


def check_fits(path: str | Path, ckpt: dict[str, Any], model: torch.nn.Module) -> None:
    """Raise CheckpointError unless the checkpoint's weights fit ``model`` key for key and shape."""
    own = model.state_dict()
    theirs = ckpt["state_dict"]
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [k for k in set(own) & set(theirs) if tuple(own[k].shape) != tuple(theirs[k].shape)]
    if missing or unexpected or shapes:
        meta = ckpt["gan_lightning"]["config"]
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"has {len(unexpected)} unknown tensors (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(f"{len(shapes)} shapes differ (e.g. {k}: {tuple(theirs[k].shape)} vs {tuple(own[k].shape)})")
        raise CheckpointError(
            f"checkpoint {path} does not fit this model: it {'; '.join(parts)}. It was written for "
            f"model={meta['model']['name']} nets.g={meta['nets']['g']} nets.d={meta['nets']['d']} "
            f"data={meta['data']['name']}; resume with the same model, nets and data settings"
        )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """Rebuild the model of a checkpoint from its stored config and load its weights (eval mode)."""
    from gan_lightning.config import from_container
    from gan_lightning.models import build_model

    ckpt = read_checkpoint(path)
    meta = ckpt["gan_lightning"]
    cfg = from_container(meta["config"])
    from gan_lightning.data.base import DataInfo

    model = build_model(cfg, DataInfo.from_dict(meta["info"]))
    check_fits(path, ckpt, model)
    model.load_state_dict(ckpt["state_dict"])
    model.g_step = int(meta["g_step"])
    return model.to(device).eval()


def state_dict_sha1(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-1 of every tensor of a state dict (names, shapes, dtypes and bytes)."""
    h = hashlib.sha1()
    for name, tensor in sorted(state_dict.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
