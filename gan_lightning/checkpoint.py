"""Reading checkpoints with errors that name the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gan_lightning.registry import ConfigError, first_line


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: missing, corrupt, truncated, foreign or incompatible."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a gan_lightning checkpoint (on CPU, weights only) or raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            others = sorted(p.name for p in path.parent.glob("*.ckpt"))
            hint = f" Checkpoints in {path.parent}: {', '.join(others)}." if others else ""
        raise CheckpointError(f"checkpoint {path} does not exist.{hint}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the write was cut off; use another checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({first_line(e)}). "
            "Use another checkpoint of the run (checkpoints/best.ckpt or a step=N.ckpt) or start anew."
        ) from None
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
